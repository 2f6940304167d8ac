import dataclasses
import math

import pytest

from atom_plugin import ATOMConfig, PRESETS
from atom_plugin.errors import ConfigError


def test_preset_fills_only_unset_fields():
    cfg = ATOMConfig(preset="datadam", w_channel=5.0).resolved()
    assert cfg.w_spatial == PRESETS["datadam"]["w_spatial"] and cfg.w_channel == 5.0 and cfg.power == 1.0
    assert ATOMConfig().resolved().preset == "atom"


def test_round_trip_dict():
    cfg = ATOMConfig(preset="dm", ipc=3).resolved(dsa_strategy_default="color_crop")
    assert ATOMConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.dsa_strategy == "color_crop"


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(preset="nope"), "unknown preset 'nope'"),
    (dict(ipc=0), "ipc must be"),
    (dict(layers=(4,)), "do not exist in a depth-3 ConvNet"),
    (dict(w_spatial=0, w_channel=0, w_embed=0), "all loss weights are 0"),
    (dict(init="zeros"), "init must be"),
    (dict(real_batch="dream"), "real_batch must be"),
    (dict(representative_pool=0), "representative_pool must be a whole number"),
    (dict(recluster_every=2.5), "recluster_every must be a whole number"),
    (dict(real_batch="representative", representative_pool=32), r"representative_pool \(32\) must be >= batch_real"),
    (dict(dsa_strategy="color_warp"), "bad DSA strategy"),
    (dict(power=-1.0), "power must be"),
])
def test_bad_values_give_clear_messages(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        ATOMConfig(**kwargs).resolved()


def test_unknown_fields_rejected():
    with pytest.raises(ConfigError, match="unknown config field"):
        ATOMConfig().replace(ipcs=3)
    with pytest.raises(ConfigError, match="unknown config field"):
        ATOMConfig.from_dict({"ipcs": 3})


FLOAT_FIELDS = [f.name for f in dataclasses.fields(ATOMConfig) if "float" in str(f.type)]


def test_the_float_fields_are_the_numbers_a_user_sets():
    assert {"lr_images", "momentum", "pool_lr", "ce_weight", "w_spatial", "w_channel", "w_embed", "power"} \
        == set(FLOAT_FIELDS)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("name", FLOAT_FIELDS)
def test_nan_or_inf_in_any_float_field_is_refused_naming_it(name, value):
    """NaN passes every range check (all its comparisons are False): each float field is checked for it."""
    with pytest.raises(ConfigError, match=rf"^`{name}` must be a finite number, got {value!r}$"):
        ATOMConfig(**{name: value}).resolved()
