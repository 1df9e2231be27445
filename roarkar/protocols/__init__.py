"""The stages of a study: base model, layer protocol (Tables 1, 4), input protocol (Tables 2, 5).

Importing the package registers its protocols in :data:`roarkar.protocols.protocol.PROTOCOLS`
(the order of these imports is the order a study plans them in); nothing else happens on import.
"""

# registration order is plan order: the layer cells of a seed, then its input cells
# isort: off
from roarkar.protocols import layer  # noqa: F401
from roarkar.protocols import input  # noqa: F401

# isort: on
from roarkar.protocols.protocol import (
    PROTOCOLS,
    CellRun,
    Protocol,
    StudyPart,
    get_protocol,
    register_protocol,
)

__all__ = ["PROTOCOLS", "CellRun", "Protocol", "StudyPart", "get_protocol", "register_protocol"]
