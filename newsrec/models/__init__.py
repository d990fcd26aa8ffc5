"""newsrec.models: news/user towers, fusion, ranker and the serving artifact.

`load_serving(dir)` is all the online services need (see `newsrec.models.serving`).
"""

from newsrec.models.artifact import ArtifactModel, load_serving
from newsrec.models.serving import ServingModel
from newsrec.models.towers import ModelConfig

__all__ = ["ArtifactModel", "ModelConfig", "ServingModel", "load_serving"]
