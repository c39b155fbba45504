"""Official LGGAN checkpoints <-> lggan state dicts (facts from the released key names and shapes; no code reused).

Three models convert: the semantic-synthesis generator (LGGANGenerator, `semantic`), its discriminator
(MultiscaleDiscriminator, `discriminator`) and the cross-view generator (CrossViewGenerator, `crossview`).  Their
official <-> lggan names are in `names`, the checks they share in `layout`, telling them apart in `dispatch`, and the
files of convert-official and export-official in `files`.
"""

from .crossview import convert_official_crossview, export_official_crossview
from .discriminator import convert_official_discriminator, export_official_discriminator
from .dispatch import convert_official, converted_config, export_official
from .files import (arguments_path, convert_official_file, export_official_file, load_converted, load_official_file,
                    release_sidecar, unused_path)
from .layout import ConversionReport
from .names import stack_indexed, unstack_indexed
from .semantic import convert_official_semantic, export_official_semantic

__all__ = [
    "ConversionReport", "arguments_path", "convert_official", "convert_official_crossview",
    "convert_official_discriminator", "convert_official_file", "convert_official_semantic", "converted_config",
    "export_official", "export_official_crossview", "export_official_discriminator", "export_official_file",
    "export_official_semantic", "load_converted", "load_official_file", "release_sidecar", "stack_indexed",
    "unstack_indexed", "unused_path",
]
