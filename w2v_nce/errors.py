"""The one exception type users see: a bad input, reported as a single line."""

import os


class UserError(ValueError):
    """Bad input or options. The CLI prints `error: <message>` and exits with status 2."""


class RankFailed(UserError):
    """Under torchrun: this rank lost the others (one failed, and reported it where it happened, or
    was stopped: torchrun names it). Nobody prints it: the run's one error line is elsewhere."""


def reports_errors() -> bool:
    """Whether this process prints user errors: yes, except under torchrun on a rank other than 0,
    whose errors reach rank 0 (w2v_nce.distributed) so that a run prints one error line."""
    return os.environ.get("RANK", "0") == "0"


def reports_lost_ranks() -> bool:
    """Whether this process says that it lost the others (RankFailed): under torchrun across
    several nodes, the first rank of each node, since a node that died may have said nothing (on
    one node the rank that failed says why, and the others stay quiet)."""
    several_nodes = int(os.environ.get("WORLD_SIZE", "1")) > int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return several_nodes and os.environ.get("LOCAL_RANK", "0") == "0"
