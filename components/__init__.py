"""Kubeflow Pipelines components: one module per step, thin wrappers over newsrec functions.

Every component runs in the project image (`BASE_IMAGE`, overridable at compile time with
the `NEWSREC_IMAGE` environment variable) and installs nothing at run time
(`install_kfp_package=False`: kfp is in the image). Bodies import newsrec inside the
function because kfp ships only the function's source to the container; what every body
does the same way (metrics files, the torch thread limit) is in `components.runtime`.
"""

from __future__ import annotations

import os

DEFAULT_IMAGE = "ghcr.io/newsrec/newsrec:0.1.0"
BASE_IMAGE = os.environ.get("NEWSREC_IMAGE", DEFAULT_IMAGE)
