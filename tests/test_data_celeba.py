"""CelebA: a tiny release written in the real file formats, read as the Attractive task with its groups."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from fake_datasets import color_of
from PIL import Image

from trustbench.data import catalog, celeba, sources
from trustbench.data.errors import DatasetFileError, DatasetUnavailableError

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "data" / "celeba.yaml"
TOLERANCE = 3 / 255  # JPEG may move a flat colour by a level or two
ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
# Image number -> (partition 0/1/2 = train/val/test, the attributes it has); every other attribute is -1.
IMAGES = {
    1: (0, {"Attractive", "Young"}),
    2: (0, {"Male", "Smiling"}),
    3: (1, {"Attractive", "Male", "Young", "Smiling"}),
    4: (2, {"Young"}),
    5: (0, set()),
    6: (2, {"Attractive", "Male", "Smiling"}),
}
TRAIN, TEST = [1, 2, 3, 5], [4, 6]  # partitions 0 and 1, then 2, in list order


def file_name(number: int) -> str:
    return f"{number:06d}.jpg"


def face(number: int) -> bytes:
    """A 178×218 JPEG like CelebA's aligned faces: the centre 178×178 square flat ``color_of(number)``,
    the 20 rows above and below it red (no chroma subsampling, so no red bleeds into the square)."""
    pixels = np.zeros((218, 178, 3), dtype=np.uint8)
    pixels[:, :] = (255, 0, 0)
    pixels[20:198] = color_of(number)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=98, subsampling=0)
    return out.getvalue()


def attribute_row(number: int) -> str:
    present = IMAGES[number][1]
    return file_name(number) + " " + " ".join(f"{1 if name in present else -1:2d}" for name in ATTRIBUTES)


def write_celeba(folder: Path) -> Path:
    """img_align_celeba.zip (members in reverse order), list_attr_celeba.txt and list_eval_partition.txt."""
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / "img_align_celeba.zip", "w") as archive:
        archive.writestr("img_align_celeba/", b"")
        for number in reversed(IMAGES):
            archive.writestr(f"img_align_celeba/{file_name(number)}", face(number))
    header = f"{len(IMAGES)}\n{' '.join(ATTRIBUTES)} \n"
    (folder / "list_attr_celeba.txt").write_text(header + "".join(f"{attribute_row(n)}\n" for n in IMAGES))
    partitions = "".join(f"{file_name(n)} {partition}\n" for n, (partition, _) in IMAGES.items())
    (folder / "list_eval_partition.txt").write_text(partitions)
    return folder


def has(attribute: str, numbers: list[int]) -> list[int]:
    return [int(attribute in IMAGES[number][1]) for number in numbers]


def rgb_unit(color: tuple[int, int, int]) -> torch.Tensor:
    return torch.tensor(color, dtype=torch.float32).div(255).view(3, 1, 1).expand(3, 64, 64)


@pytest.fixture(autouse=True)
def fresh_catalog():
    catalog.clear_cache()
    yield
    catalog.clear_cache()


@pytest.fixture
def data_dir(tmp_path) -> Path:
    write_celeba(tmp_path / "celeba")
    return tmp_path


def test_train_is_partitions_0_and_1_and_test_is_partition_2_labelled_attractive(data_dir):
    faces = catalog.load("celeba", data_dir)
    assert faces.num_classes == 2 and faces.class_names == ("not Attractive", "Attractive")
    assert faces.y_train.tolist() == has("Attractive", TRAIN) == [1, 0, 1, 0]
    assert faces.y_test.tolist() == has("Attractive", TEST) == [0, 1]
    assert faces.y_train.dtype == torch.int64


def test_groups_are_male_and_young_with_1_for_the_attribute(data_dir):
    faces = catalog.load("celeba", data_dir)
    assert faces.groups_train["male"].tolist() == has("Male", TRAIN) == [0, 1, 1, 0]
    assert faces.groups_train["young"].tolist() == has("Young", TRAIN) == [1, 0, 1, 0]
    assert faces.groups_test["male"].tolist() == [0, 1] and faces.groups_test["young"].tolist() == [1, 0]
    assert faces.groups_test["male"].dtype == torch.int64


def test_images_are_the_centre_square_resized_to_64_in_unit_range(data_dir):
    faces = catalog.load("celeba", data_dir)
    assert faces.kind == "image" and faces.input_shape == (3, 64, 64)
    assert faces.x_train.shape == (4, 3, 64, 64) and faces.x_test.shape == (2, 3, 64, 64)
    assert faces.x_train.dtype == torch.float32
    for images, numbers in ((faces.x_train, TRAIN), (faces.x_test, TEST)):
        for image, number in zip(images, numbers, strict=True):  # no red border survives the crop
            torch.testing.assert_close(image, rgb_unit(color_of(number)), atol=TOLERANCE, rtol=0)


def test_decoded_faces_are_cached_beside_the_files_and_reused(data_dir, monkeypatch):
    first = catalog.load("celeba", data_dir)
    assert (data_dir / "celeba" / "decoded_64x64.npz").is_file()

    def no_decoding(*args):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(celeba, "read_celeba", no_decoding)
    catalog.clear_cache()
    second = catalog.load("celeba", data_dir)
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_test, second.y_test)
    assert torch.equal(first.groups_train["young"], second.groups_train["young"])


def test_any_attribute_can_be_the_target(data_dir):
    folder = data_dir / "celeba"
    arrays, names = celeba.read_celeba(*(folder / file for file in sources.CELEBA_FILES), side=16)
    assert names == tuple(ATTRIBUTES) and arrays.y_train.shape == (4, 40)
    task = celeba.attribute_task(arrays, names, target="Smiling")
    assert task.class_names == ("not Smiling", "Smiling")
    assert task.arrays.y_train.tolist() == has("Smiling", TRAIN) and task.arrays.y_test.tolist() == [0, 1]
    assert task.arrays.x_test.shape == (2, 3, 16, 16)


def test_an_unknown_target_lists_the_attributes(data_dir):
    folder = data_dir / "celeba"
    arrays, names = celeba.read_celeba(*(folder / file for file in sources.CELEBA_FILES), side=8)
    with pytest.raises(ValueError, match=r"no attribute 'Happy'; its attributes are: 5_o_Clock_Shadow, "):
        celeba.attribute_task(arrays, names, target="Happy")


def test_a_truncated_zip_is_a_one_line_error_naming_it(data_dir):
    archive = data_dir / "celeba" / "img_align_celeba.zip"
    archive.write_bytes(archive.read_bytes()[:-300])
    with pytest.raises(
        DatasetFileError, match=r"img_align_celeba\.zip: unreadable or corrupt archive"
    ) as error:
        catalog.load("celeba", data_dir)
    assert "\n" not in str(error.value)


def test_a_damaged_image_is_named_by_its_archive_member(data_dir):
    archive = data_dir / "celeba" / "img_align_celeba.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for number in IMAGES:
            zipped.writestr(
                f"img_align_celeba/{file_name(number)}", face(number)[: 200 if number == 4 else None]
            )
    with pytest.raises(DatasetFileError, match=r"img_align_celeba\.zip\[img_align_celeba/000004\.jpg\]"):
        catalog.load("celeba", data_dir)


def test_an_image_listed_but_not_in_the_zip_is_an_error(data_dir):
    archive = data_dir / "celeba" / "img_align_celeba.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for number in (1, 2, 3, 4, 6):
            zipped.writestr(f"img_align_celeba/{file_name(number)}", face(number))
    with pytest.raises(DatasetFileError, match=r"1 listed images are not in it, e\.g\. 000005\.jpg"):
        catalog.load("celeba", data_dir)


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (attribute_row(2).replace(" 1", " 0", 1), "the row of 000002.jpg has values other than 1 and -1"),
        (attribute_row(2).rsplit(" ", 1)[0], "the row of 000002.jpg needs 40 values of 1 or -1"),
        (attribute_row(2).replace("-1", "no", 1), "the row of 000002.jpg needs 40 values of 1 or -1"),
    ],
)
def test_a_bad_attribute_row_is_an_error_naming_file_and_image(data_dir, row, problem):
    path = data_dir / "celeba" / "list_attr_celeba.txt"
    path.write_text(path.read_text().replace(attribute_row(2), row))
    with pytest.raises(DatasetFileError) as error:
        catalog.load("celeba", data_dir)
    assert str(error.value) == f"{path}: {problem}"


def test_the_attribute_count_line_must_match_the_rows(data_dir):
    path = data_dir / "celeba" / "list_attr_celeba.txt"
    path.write_text(path.read_text().replace("6\n", "202599\n", 1))
    with pytest.raises(DatasetFileError, match="line 1 counts 202599 images but 6 rows follow"):
        catalog.load("celeba", data_dir)


def test_a_partition_other_than_0_1_2_is_an_error(data_dir):
    path = data_dir / "celeba" / "list_eval_partition.txt"
    path.write_text(path.read_text().replace("000005.jpg 0", "000005.jpg 3"))
    with pytest.raises(DatasetFileError, match=r"partition 3 is none of 0 \(train\), 1 \(val\), 2 \(test\)"):
        catalog.load("celeba", data_dir)


def test_without_the_files_the_error_is_one_line_saying_what_to_fetch_and_where(data_dir):
    (data_dir / "celeba" / "list_eval_partition.txt").unlink()
    with pytest.raises(DatasetUnavailableError) as error:
        catalog.load("celeba", data_dir)
    assert str(error.value) == (
        "celeba has no download; to get it download http://mmlab.ie.cuhk.edu.hk/projects/CelebA.html and put "
        f"img_align_celeba.zip, list_attr_celeba.txt, list_eval_partition.txt in {data_dir / 'celeba'}"
    )


def test_celeba_is_never_downloaded(tmp_path):
    assert sources.SOURCES["celeba"].download is None
    with pytest.raises(DatasetUnavailableError, match="celeba has no download"):
        sources.fetch("celeba", tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_the_data_config_protects_a_group_of_the_dataset_and_runs_the_fairness_suite(data_dir):
    config = yaml.safe_load(CONFIG.read_text())
    faces = catalog.load("celeba", data_dir)
    assert config["protected"] in faces.groups_train and config["suites"] == ["fairness"]
    assert config["val_size"] == 19867  # the size of the official val partition
