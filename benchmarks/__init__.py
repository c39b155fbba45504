"""Benchmarks for lggan (not part of the installed package; run from the repository root).

    python -m benchmarks.generator_step --help

Modules:
    reference       the plain per-class ("official-style") local branch, dense, reusing a model's weights
    labels          Cityscapes-like (35 classes) and ADE20K-like (151 classes) label maps from render_scene
    memory          peak-memory measurement of one step (CPU: profiler allocation events; CUDA: allocator stats)
    generator_step  the generator forward+backward benchmark (issue 7)
"""
