"""LGGAN networks, one module per paper component (§3): E, G_g, G_l (+ classifier), G_w, G and D_s / D_i."""

from lggan.models.checkpointing import CheckpointableBlock, set_activation_checkpointing
from lggan.models.class_conv import ClassImages, ClassSpecificConv, combine_class_images
from lggan.models.classifier import ClassificationModule, ClassLogits
from lggan.models.crossview import CrossViewGenerator, ResnetGlobalGenerator
from lggan.models.discriminator import MultiscaleDiscriminator, NLayerDiscriminator, PatchGANDiscriminator
from lggan.models.encoder import EncoderOutput, SharedEncoder
from lggan.models.generator import GeneratorOutput, LGGANGenerator
from lggan.models.global_generator import SPADEGenerator
from lggan.models.init import init_weights
from lggan.models.local_generator import LocalClassGenerator, LocalOutput
from lggan.models.residual import ResidualBlock
from lggan.models.spade import SPADE, SPADEResBlock
from lggan.models.spectral import spectral_norm
from lggan.models.weight_map import WeightMapGenerator, WeightMaps, fuse

__all__ = [
    "SPADE",
    "CheckpointableBlock",
    "ClassImages",
    "ClassLogits",
    "ClassSpecificConv",
    "ClassificationModule",
    "CrossViewGenerator",
    "EncoderOutput",
    "GeneratorOutput",
    "LGGANGenerator",
    "LocalClassGenerator",
    "LocalOutput",
    "MultiscaleDiscriminator",
    "NLayerDiscriminator",
    "PatchGANDiscriminator",
    "ResidualBlock",
    "ResnetGlobalGenerator",
    "SPADEGenerator",
    "SPADEResBlock",
    "SharedEncoder",
    "WeightMapGenerator",
    "WeightMaps",
    "combine_class_images",
    "fuse",
    "init_weights",
    "set_activation_checkpointing",
    "spectral_norm",
]
