"""The papers' claims as *studies*: each a row of one table (:mod:`.table`: the claim's words, its
sweep specs, the analysis it runs and the paper's setting beside ours), judged only from the results
on disk (:mod:`.analyses`), rendered as one page per claim and a summary index (:mod:`.pages`).

    python -m mutransfer.studies --results RESULTS --out docs/science
"""

from .analyses import ANALYSES, Evidence, Finding
from .pages import generate
from .table import STUDIES, Study, by_key

__all__ = ["ANALYSES", "Evidence", "Finding", "STUDIES", "Study", "by_key", "generate"]
