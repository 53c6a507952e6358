"""qpsweep: open-loop QPS sweeps against OpenAI-compatible LLM endpoints.

The pipeline: dataset + schedule -> attack (client) -> ``requests.jsonl`` -> analyze ->
report.  ``qpsweep.cli.main.main`` is the command line; the names below are the library API.
"""

from qpsweep._version import __version__
from qpsweep.analysis.percentiles import Percentiles
from qpsweep.analysis.summary import LevelSummary, summarize_levels
from qpsweep.config.scenario import Scenario, Target
from qpsweep.datasets.prompts import Prompt, load_prompts
from qpsweep.errors import ConfigError, DatasetError, QpsweepError, RunDirError
from qpsweep.load.schedule import arrival_offsets_s
from qpsweep.records.record import ERROR_KINDS, RequestRecord, read_records

__all__ = [
    "ERROR_KINDS",
    "ConfigError",
    "DatasetError",
    "LevelSummary",
    "Percentiles",
    "Prompt",
    "QpsweepError",
    "RequestRecord",
    "RunDirError",
    "Scenario",
    "Target",
    "__version__",
    "arrival_offsets_s",
    "load_prompts",
    "read_records",
    "summarize_levels",
]
