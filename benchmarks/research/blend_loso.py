import time, pickle, sys, json, itertools, numpy as np, torch
torch.set_num_threads(2)
from cases import *
from stfusion.core import fusion, training, models, raster
from stfusion.core.sample_scene import make_sample_scene
import os
EPOCHS, STEPS, BATCH, LR = int(sys.argv[1]), int(sys.argv[2]), 32, float(sys.argv[3])
use_syn = len(sys.argv) > 4 and sys.argv[4] == 'syn'
def site_pairs(site):
    d = DATA / site; js = json.loads((d / 'dataset.json').read_text())
    dates = sorted(set(js['fine']) & set(js['coarse']))
    return [(raster.read_raster(str(d / js['fine'][t])), raster.read_raster(str(d / js['coarse'][t]))) for t in dates]
ex = {s: training.stfnet_examples(site_pairs(s), RATIO[s]) for s in ['cia', 'lgc_flood', 'kranj']}
if use_syn:
    if not os.path.exists('/tmp/stfusion_syn/dataset.json'): make_sample_scene('/tmp/stfusion_syn', size=480)
    js = json.load(open('/tmp/stfusion_syn/dataset.json'))
    pr = [(raster.read_raster('/tmp/stfusion_syn/' + js['fine'][t]), raster.read_raster('/tmp/stfusion_syn/' + js['coarse'][t])) for t in js['fine']]
    ex['syn'] = training.stfnet_examples(pr, 500 / 30.0)
cs = load_cases()
res = {}
for test in ['cia', 'lgc_flood', 'kranj']:
    t = time.time()
    exs = [e for s in ex if s != test for e in ex[s]]
    m, hist = training.train(None, 'stfnet', initial_model=models.STFNet(correction_scale=float(os.environ.get('CS', '0.1')), prefer_logit=float(os.environ.get('PL', '3'))), epochs=EPOCHS, batch_size=BATCH, learning_rate=LR, examples=exs, steps_per_epoch=STEPS)
    for c in cs:
        if c['site'] != test: continue
        out = {}
        for cnn in (False, True):
            st = fusion.prepare(m, {'architecture': 'stfnet'}, c['f1'], c['c1'], c['c2'], c.get('f3'), c.get('c3'), scale_ratio=c['ratio'], use_cnn=cnn)
            out[cnn] = rmse(fusion.fuse_arrays(st, c['f1'], c['c1'], c['c2'], c.get('f3'), c.get('c3')), c['ref'])
        res[c['name']] = out
        print(c['name'], 'noCNN', round(out[False], 4), 'CNN', round(out[True], 4), f'{(out[True]/out[False]-1)*100:+.1f}%', f'{time.time()-t:.0f}s', flush=True)
print('mean rel', np.mean([v[True]/v[False]-1 for v in res.values()])*100)
