"""The pointing game on regions: hand-made attention over hand-made boxes; which regions count as pointing at
an object (IoU >= 0.5, inside its box, or the region standing for it); padding never wins; the random
baseline is the exact share of the real regions that count."""

from __future__ import annotations

import numpy as np
import pytest

from vlkit.metrics.region_pointing import RegionPointingTally, peak_region, pointing_regions

# An object at (10, 10)-(30, 30) and four regions: its own box, a copy with IoU 0.47, a cell inside it,
# and a distractor far away; a fifth slot is padding.
OBJECT = np.array([[10, 10, 30, 30]], dtype=np.float32)
BOXES = np.array(
    [[10, 10, 30, 30], [14, 14, 34, 34], [12, 12, 20, 20], [40, 40, 60, 60], [10, 10, 30, 30]],
    dtype=np.float32,
)
MASK = np.array([True, True, True, True, False])


def test_regions_point_at_an_object_by_iou_by_being_inside_or_by_standing_for_it():
    assert pointing_regions(BOXES, MASK, OBJECT).tolist() == [True, False, True, False, False]
    near = np.array([[12, 12, 32, 32]], dtype=np.float32)  # IoU with regions 0 and 1: 324 / 476 = 0.68
    assert pointing_regions(BOXES, MASK, near).tolist() == [True, True, True, False, False]
    # On a grid no cell may reach IoU 0.5: the cell standing for the object counts all the same.
    assert pointing_regions(BOXES, MASK, OBJECT, object_regions=[3]).tolist() == [
        True,
        False,
        True,
        True,
        False,
    ]
    assert not pointing_regions(BOXES, MASK, np.zeros((0, 4))).any()


def test_the_peak_region_is_the_real_region_with_the_most_attention():
    assert peak_region(np.array([0.1, 0.2, 0.3, 0.1, 0.9]), MASK) == 2  # the padded slot's 0.9 never wins


def test_the_tally_counts_peak_hits_against_the_random_region_baseline():
    tally = RegionPointingTally()
    targets = pointing_regions(BOXES, MASK, OBJECT)  # 2 of the 4 real regions count
    assert tally.add(np.array([0.7, 0.1, 0.1, 0.1, 0.0]), targets, MASK) is True  # peak on the object
    assert tally.add(np.array([0.1, 0.1, 0.1, 0.7, 0.0]), targets, MASK) is False  # peak on the distractor
    assert tally.add(np.array([0.1, 0.6, 0.2, 0.1, 0.0]), targets, MASK) is False  # on the IoU-0.47 copy
    one = pointing_regions(BOXES[:2], MASK[:2], OBJECT)  # an image of 2 regions, 1 counts
    assert tally.add(np.array([0.2, 0.8]), one, MASK[:2]) is False
    result = tally.result()
    assert result["pointing_game"] == pytest.approx(1 / 4)
    assert result["random"] == pytest.approx((2 / 4 * 3 + 1 / 2) / 4)
    assert result["n_words"] == 4
    assert RegionPointingTally().result() == {"pointing_game": None, "random": None, "n_words": 0}
