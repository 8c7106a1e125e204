"""Names the Processing Results Viewer entries of stfusion reports by algorithm and date.

Processing names an HTML result by its output's label ("Fusion report"), the same for every
run; an stfusion report's title says which algorithm made it and for which date (e.g.
"stfusion fuse 2001-10-17"), so the entry takes the title, without the "stfusion " prefix.
"""
import html
import re
from typing import Optional

TITLE = re.compile(r"<title>stfusion ([^<]+)</title>")


def report_title(path: str) -> Optional[str]:
    """The title of an stfusion HTML report ('fuse 2001-10-17'), or None for other files."""
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            head = stream.read(4096)
    except OSError:
        return None
    match = TITLE.search(head)
    return html.unescape(match.group(1)) if match else None


class ResultNames:
    """Connected to Processing's results list while the plugin is loaded."""

    def __init__(self):
        from processing.core.ProcessingResults import resultsList
        self.results = resultsList
        self.results.resultAdded.connect(self.rename)

    def rename(self) -> None:
        renamed = False
        for result in self.results.getResults():
            title = report_title(result.filename) if isinstance(result.filename, str) else None
            if title and result.name != title:
                result.name, renamed = title, True
        if renamed:  # the Results Viewer refills its list on this signal
            self.results.resultAdded.emit()

    def disconnect(self) -> None:
        self.results.resultAdded.disconnect(self.rename)
