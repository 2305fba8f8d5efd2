# Copyright 2026 The hpunet Authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Installs hpunet.

The exact tested versions live in `constraints.txt`; install with

  pip install -c constraints.txt -e ".[data,test]"

Ranges here are deliberately loose enough for `pip` to resolve and tight
enough to exclude known-broken combinations (see README, "Installation").
Platform markers: x86-64 gets `tensorflow-cpu`, ARM (macOS arm64, Linux
aarch64) `tensorflow`. pip evaluates markers for the running machine even with
`--platform`, so a cross-platform check evaluates them for the target first and
then runs `pip install --dry-run --platform <tag> --only-binary=:all:` on the
result (done for macosx_12_0_arm64, manylinux_2_27_aarch64 and x86-64).

The top-level `datasets/` folder holds TFDS builders and is *not* installed as
a top-level package (its name would shadow Hugging Face's `datasets`): it and
`configs/` are installed inside the package as `hpunet/_datasets` and
`hpunet/_configs`.
"""

import setuptools

_CORE = [
    "jax>=0.10.1,<0.11",
    "jaxlib>=0.10.1,<0.11",
    "dm-haiku>=0.0.17",
    "optax>=0.2.8",
    "ml-collections>=1.1.0",
    "absl-py>=2.5.1",
    "numpy>=2.0",
    "scipy>=1.14",
    "orbax-checkpoint>=0.12.8",
    "etils[epath]>=1.15.0",  # local and gs:// workdirs (also used by orbax)
]

# x86-64 machines get tensorflow-cpu (TensorFlow is only used for data and
# summaries); it has no wheels for ARM (Apple Silicon, Linux aarch64), where
# the `tensorflow` wheels are CPU builds anyway. Both distributions write the
# same `tensorflow` module: never install one beside the other.
_X86_64 = "platform_machine == 'x86_64' or platform_machine == 'AMD64'"
_NOT_X86_64 = "platform_machine != 'x86_64' and platform_machine != 'AMD64'"

_DATA = [
    f"tensorflow-cpu>=2.21,<2.22; {_X86_64}",
    f"tensorflow>=2.21,<2.22; {_NOT_X86_64}",
    "tensorflow-datasets>=4.9.10",
    "protobuf>=6.31.1,<8",
    # Undeclared dependencies of tensorflow-datasets (README, Installation).
    "importlib_resources>=7.1.0",
    "pillow>=13.0.0",
    # Figures of hpunet.evaluate (the mode-frequency plot) and notebooks/.
    "matplotlib>=3.10",
]

_TEST = [
    "pytest>=9.2.0",
    "dill>=0.4.1",  # needed by tfds.testing, undeclared by tfds.
    # Reference for hpunet.metrics.adapted_rand_error (tests only).
    "scikit-image>=0.26.0,<0.27",
    # Executing notebooks/*.ipynb in a python3 kernel (tests/notebooks_test.py).
    "nbclient>=0.10.2,<0.12",
    "nbformat>=5.10.4",
    "ipykernel>=6.29.5",
]

# Cityscapes AP (hpunet/cityscapes_eval.py). cityscapesscripts itself is NOT
# listed: its metadata pulls the obsolete `typing` backport and matplotlib,
# which the instance evaluation never imports. Install it separately with
#   pip install -c constraints.txt --no-deps cityscapesscripts==2.3.0
# These are the dependencies its instance evaluation really imports.
_EVAL = [
    "pyquaternion>=0.9.9",
    "pillow>=13.0.0",
    "matplotlib>=3.10",  # also in `data`
]

# Reading the training curves (`tensorboard --logdir=<workdir>`): TensorFlow
# no longer depends on it.
_TENSORBOARD = ["tensorboard>=2.21"]

setuptools.setup(
    name="hpunet",
    version="0.1.0",
    description=(
        "Hierarchical Probabilistic U-Net (Kohl et al. 2019) and Probabilistic"
        " U-Net (Kohl et al. 2018) in JAX/Haiku."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    # configs/ and the builders of datasets/ ship inside the package
    # (hpunet/_configs, hpunet/_datasets), so an installed hpunet resolves
    # config names such as "lidc" and builds datasets from any directory; a
    # checkout uses its top-level folders (hpunet.config_lib,
    # hpunet.dataset_builders).
    packages=setuptools.find_packages(include=["hpunet", "hpunet.*"]) + [
        "hpunet._configs", "hpunet._datasets"],
    package_dir={"hpunet._configs": "configs",
                 "hpunet._datasets": "datasets"},
    package_data={"hpunet._datasets": ["*/*_dataset_builder.py", "*/*.md",
                                       "*/*.bib"]},
    exclude_package_data={"hpunet._datasets": ["*/*_test.py"]},
    install_requires=_CORE,
    extras_require={
        "data": _DATA,
        "test": _TEST + _DATA + _EVAL,
        "eval": _EVAL,
        "tensorboard": _TENSORBOARD,
        "tpu": ["jax[tpu]>=0.10.1,<0.11"],
        "gpu": ["jax[cuda12]>=0.10.1,<0.11"],
    },
)
