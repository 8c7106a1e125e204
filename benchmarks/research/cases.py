import json, sys, os, pickle
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build' / 'plugins'))
from stfusion.core import raster
DATA = Path(__file__).resolve().parents[3] / 'shared' / 'data'
RATIO = {'cia': 10, 'lgc_flood': 16, 'kranj': 16}
def load_cases():
    p = '/tmp/stfusion_cases.pkl'
    if os.path.exists(p): return pickle.load(open(p, 'rb'))
    out = []
    for site in ['cia', 'lgc_flood', 'kranj']:
        d = DATA / site; js = json.loads((d / 'dataset.json').read_text())
        rd = lambda kind, t: raster.read_raster(str(d / js[kind][t]))
        for i, c in enumerate(js['cases']):
            cs = dict(name=f'{site} {i}', site=site, ratio=RATIO[site], f1=rd('fine', c['t1'][0]), c1=rd('coarse', c['t1'][0]), c2=rd('coarse', c['t2']), ref=rd('fine', c['t2']))
            if len(c['t1']) > 1: cs.update(f3=rd('fine', c['t1'][1]), c3=rd('coarse', c['t1'][1]))
            out.append(cs)
    pickle.dump(out, open(p, 'wb')); return out
def rmse(pred, ref, *inputs):
    m = raster.valid_mask(ref, pred, *inputs)
    return float(np.mean([np.sqrt(np.mean((pred[b][m] - ref[b][m]) ** 2)) for b in range(ref.shape[0])]))
