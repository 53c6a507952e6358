"""qpsweep: open-loop QPS sweeps against OpenAI-compatible LLM endpoints.

The pipeline: dataset + schedule -> attack (client) -> ``requests.jsonl`` -> analyze ->
report.  ``qpsweep.cli.main`` is the command line; the names below are the library API.
"""

__version__ = "0.1.0"

from qpsweep.analyze import LevelSummary, summarize_levels
from qpsweep.config import Scenario, Target
from qpsweep.dataset import Prompt, load_prompts
from qpsweep.errors import ConfigError, DatasetError, QpsweepError, RunDirError
from qpsweep.percentiles import Percentiles
from qpsweep.record import ERROR_KINDS, RequestRecord, read_records
from qpsweep.schedule import arrival_offsets_s

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
