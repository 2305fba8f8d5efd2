# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Tests for hpunet.cityscapes_eval on a tiny fabricated gtFine folder."""

import os
import sys

import numpy as np
import pytest

from hpunet import cityscapes_eval as ce

Image = pytest.importorskip("PIL.Image")

_IDS = ("testcity_000000_000001", "testcity_000000_000002")


def _official_or_skip():
  try:
    return ce.import_instance_evaluation()
  except ImportError as e:
    pytest.skip(f"cityscapesscripts (optional `eval` extra) not importable "
                f"here: {e}")


def _half_res_cars():
  """Half-resolution (512x1024) car instance maps, ids 1.. per image."""
  a = np.zeros((512, 1024), np.int32)
  a[100:120, 100:140] = 1
  a[300:330, 500:560] = 2
  b = np.zeros((512, 1024), np.int32)
  b[50:70, 900:940] = 1
  b[200:260, 700:800] = 2
  b[400:420, 10:50] = 3
  return {_IDS[0]: a, _IDS[1]: b}


@pytest.fixture(scope="module")
def gt_folder(tmp_path_factory):
  root = tmp_path_factory.mktemp("cityscapes")
  city = root / "gtFine" / "val" / "testcity"
  city.mkdir(parents=True)
  for image_id, cars in _half_res_cars().items():
    full = ce.upsample_nearest(cars)
    label_ids = np.full(full.shape, 7, np.uint8)  # road
    label_ids[:20] = 0  # unlabeled (void)
    label_ids[full > 0] = 26
    label_ids[900:950, 0:100] = 24  # a person instance
    label_ids[950:1000, 0:100] = 26  # a car group (no instance id)
    inst = label_ids.astype(np.uint16)
    inst[full > 0] = 26000 + full[full > 0]
    inst[900:950, 0:100] = 24001
    Image.fromarray(inst).save(city / f"{image_id}_gtFine_instanceIds.png")
    Image.fromarray(label_ids).save(city / f"{image_id}_gtFine_labelIds.png")
  return str(root / "gtFine")


def _write_all(results, preds):
  for image_id, (inst, scores) in preds.items():
    ce.write_prediction(str(results), image_id, inst, scores)


def test_perfect_empty_and_partial_predictions(gt_folder, tmp_path):
  _official_or_skip()
  cars = _half_res_cars()
  perfect = {k: (v, {i: 0.9 - 0.1 * i for i in range(1, v.max() + 1)})
             for k, v in cars.items()}
  _write_all(tmp_path / "perfect", perfect)
  res = ce.evaluate_car_ap(gt_folder, str(tmp_path / "perfect"))
  assert res == (1.0, 1.0, 2)
  assert not os.path.exists("matches.json")  # nothing written to the cwd

  _write_all(tmp_path / "empty", {k: (v, {}) for k, v in cars.items()})
  assert ce.evaluate_car_ap(gt_folder, str(tmp_path / "empty")) == (0, 0, 2)

  # One car predicted at IoU 0.75 (40x60 of its 40x80 pixels) with the lowest
  # score: a match for IoU thresholds 0.50..0.70, otherwise a false positive
  # plus a miss, so AP = (5 * 1 + 5 * 0.8) / 10 and AP50 = 1.
  partial = {k: (v.copy(), dict(s)) for k, (v, s) in perfect.items()}
  inst, scores = partial[_IDS[1]]
  inst[400:420, 40:50] = 0
  scores[3] = 0.05
  _write_all(tmp_path / "partial", partial)
  res = ce.evaluate_car_ap(gt_folder, str(tmp_path / "partial"))
  assert res.ap == pytest.approx(0.9)
  assert res.ap50 == pytest.approx(1.0)
  # Image subset.
  one = ce.evaluate_car_ap(gt_folder, str(tmp_path / "partial"),
                           image_ids=[_IDS[0]])
  assert one == (1.0, 1.0, 1)


def test_missing_prediction_file_is_an_error(gt_folder, tmp_path):
  _official_or_skip()
  ce.write_prediction(str(tmp_path), _IDS[0], np.zeros((4, 8), int), {})
  with pytest.raises(FileNotFoundError, match=_IDS[1]):
    ce.evaluate_car_ap(gt_folder, str(tmp_path))


def test_write_prediction_format(tmp_path):
  inst = np.zeros((2, 4), np.int32)
  inst[0, 1] = 3
  inst[1, 2:] = 5
  path = ce.write_prediction(str(tmp_path), "frankfurt_000000_000294", inst,
                             {3: 0.5, 5: 0.25, 7: 1.0}, full_size=(4, 8))
  with open(path, encoding="utf-8") as f:
    lines = f.read().splitlines()
  assert lines == ["masks/frankfurt_000000_000294_3.png 26 0.500000",
                   "masks/frankfurt_000000_000294_5.png 26 0.250000"]
  mask = np.array(Image.open(tmp_path / "masks" /
                             "frankfurt_000000_000294_5.png"))
  expected = np.zeros((4, 8), np.uint8)
  expected[2:, 4:] = 255
  np.testing.assert_array_equal(mask, expected)
  with pytest.raises(ValueError, match="image_id"):
    ce.write_prediction(str(tmp_path), "frankfurt.png", inst, {})


def test_scores_and_upsampling():
  np.testing.assert_array_equal(
      ce.upsample_nearest(np.array([[1, 2], [3, 4]]), (4, 4)),
      [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])
  # Two samples, 1x2 pixels, classes (bg, car1, car2): summed car softmax.
  probs = np.array([[[[0.5, 0.25, 0.25], [1.0, 0.0, 0.0]]],
                    [[[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]]]])
  p_car = ce.car_probability(np.log(probs + 1e-30), car_class_ids=(1, 2))
  np.testing.assert_allclose(p_car, [[0.75, 0.25]], atol=1e-6)
  scores = ce.instance_scores(np.array([[4, 4]]), p_car)
  assert scores.keys() == {4} and scores[4] == pytest.approx(0.5)
  assert ce.instance_scores(np.array([[0, 2]]), p_car) == {
      2: pytest.approx(0.25)}


def test_clear_error_when_cityscapesscripts_missing(monkeypatch):
  monkeypatch.setitem(sys.modules, "cityscapesscripts", None)
  monkeypatch.setitem(sys.modules, "cityscapesscripts.evaluation", None)
  with pytest.raises(ImportError, match=r"\.\[eval\]"):
    ce.import_instance_evaluation()
