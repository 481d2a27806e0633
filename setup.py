"""The one part of the build that pyproject.toml cannot say: the AudioSocket hot path in C.

``operadora.audiosocket._native`` (epoll, eventfd, timerfd: Linux only) is optional: where it
does not build, the package installs without it and the media server runs on asyncio
(``media.engine = "auto"``). See docs/media.md, "The native engine".
"""

import sys

from setuptools import Extension, setup

native = Extension(
    "operadora.audiosocket._native",
    ["src/operadora/audiosocket/_native.c"],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
    optional=True,
)

setup(ext_modules=[native] if sys.platform.startswith("linux") else [])
