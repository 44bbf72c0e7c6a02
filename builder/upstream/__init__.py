"""Reading the upstream (and our own) simple-repository indexes: PEP 691 JSON, PEP 503 HTML."""

from .models import DistFile, ProjectPage

__all__ = ["DistFile", "ProjectPage"]
