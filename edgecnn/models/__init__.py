"""The torch reference zoo: one file per family, one registry (``list_models``, ``create_model``)."""

from edgecnn.models import (  # noqa: F401  (importing a family file registers its models)
    alexnet,
    detection,
    efficientnet,
    googlenet,
    lenet,
    mnasnet,
    mobilenet,
    regnet,
    resnet,
    segmentation,
    shapes,
    shufflenet,
    squeezenet,
    vgg,
)
from edgecnn.models.googlenet import Inception
from edgecnn.models.registry import (
    GROUPS,
    ModelSpec,
    count_params,
    create_model,
    describe_all,
    get_spec,
    inference_params,
    list_models,
)
from edgecnn.models.weights import check_state_dict, load_weights, read_state_dict

__all__ = ["GROUPS", "Inception", "ModelSpec", "check_state_dict", "count_params", "create_model", "describe_all",
           "get_spec", "inference_params", "list_models", "load_weights", "read_state_dict"]
