"""Settings: precedence (file < user file < env) and one clear error for each kind of bad value."""

import re
import shutil
from pathlib import Path

import pytest

import jarvis
from jarvis.config import DEFAULTS_FILE, load_settings, user_settings_file
from jarvis.errors import ConfigError


def write(path, text):
    path.write_text(text)
    return path


def test_defaults_come_from_settings_toml():
    s = load_settings(environ={})
    assert s.engine.batch_size == 4 and s.engine.max_queue == 64
    assert s.server.host == "127.0.0.1" and s.server.port == 5050
    assert s.models.max_loaded_models == 2 and s.cache.max_size == 200


def test_user_file_overrides_defaults_and_env_overrides_both(tmp_path):
    user = write(tmp_path / "me.toml", "[engine]\nbatch_size = 2\nmax_queue = 8\n")
    s = load_settings(user, environ={})
    assert (s.engine.batch_size, s.engine.max_queue) == (2, 8)
    s = load_settings(user, environ={"JARVIS_ENGINE_BATCH_SIZE": "3"})
    assert (s.engine.batch_size, s.engine.max_queue) == (3, 8)


def test_user_file_from_jarvis_config_variable(tmp_path):
    user = write(tmp_path / "me.toml", "[cache]\nenabled = false\n")
    assert load_settings(environ={"JARVIS_CONFIG": str(user)}).cache.enabled is False


def test_seed_gpu_variables_work():
    s = load_settings(environ={"LLAMA_USE_GPU": "false", "LLAMA_GPU_LAYERS": "12", "CUDA_VISIBLE_DEVICES": "1"})
    assert (s.gpu.use_gpu, s.gpu.gpu_layers, s.gpu.cuda_visible_devices) == (False, 12, "1")


def test_list_settings_from_environment_are_comma_separated():
    s = load_settings(environ={"JARVIS_MODELS_WARMUP": "a, b", "JARVIS_GENERAL_MODELS_DIRS": ""})
    assert s.models.warmup == ["a", "b"] and s.general.models_dirs == []


def test_unknown_key_names_file_and_known_keys(tmp_path):
    user = write(tmp_path / "me.toml", "[engine]\nbatchsize = 2\n")
    with pytest.raises(ConfigError) as e:
        load_settings(user, environ={})
    assert str(user) in str(e.value) and "engine.batchsize" in str(e.value) and "batch_size" in str(e.value)


def test_unknown_section(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown section \[engin\]"):
        load_settings(write(tmp_path / "me.toml", "[engin]\nx = 1\n"), environ={})


def test_wrong_type_names_key_value_and_what_is_allowed(tmp_path):
    user = write(tmp_path / "me.toml", '[engine]\nbatch_size = "four"\n')
    with pytest.raises(ConfigError) as e:
        load_settings(user, environ={})
    msg = str(e.value)
    assert str(user) in msg and "engine.batch_size" in msg and "'four'" in msg and "int" in msg


def test_out_of_range_value_from_environment_names_the_variable():
    with pytest.raises(ConfigError) as e:
        load_settings(environ={"JARVIS_ENGINE_BATCH_SIZE": "0"})
    msg = str(e.value)
    assert "JARVIS_ENGINE_BATCH_SIZE" in msg and "'0'" in msg and ">= 1" in msg


def test_invalid_toml_gives_the_line(tmp_path):
    user = write(tmp_path / "me.toml", "[engine]\nbatch_size = 2\nmax_queue = = 3\n")
    with pytest.raises(ConfigError, match=r"line 3"):
        load_settings(user, environ={})


def test_missing_user_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_readme_settings_table_matches_settings_toml():
    """Every key in config/settings.toml appears in the README's table with the same default."""
    import tomllib

    from jarvis.config import PROJECT_ROOT

    defaults = tomllib.loads(DEFAULTS_FILE.read_text())
    readme = (PROJECT_ROOT / "README.md").read_text()
    rows = {m[0]: m[1] for m in re.findall(r"^\| `([a-z0-9_]+\.[a-z0-9_]+)` \| `([^`]*)` \|", readme, re.M)}
    expected = {f"{sec}.{key}": val for sec, table in defaults.items() for key, val in table.items()}
    assert set(rows) == set(expected)
    for key, value in expected.items():
        shown = rows[key]
        as_toml = tomllib.loads(f"v = {shown}")["v"]
        assert as_toml == value, f"README shows {key} = {shown}, settings.toml has {value!r}"


def test_the_defaults_ship_inside_the_package_and_the_checkout_links_them():
    from jarvis.config import PROJECT_ROOT

    assert DEFAULTS_FILE.is_relative_to(Path(jarvis.__file__).parent)
    assert (PROJECT_ROOT / "config" / "settings.toml").read_text() == DEFAULTS_FILE.read_text()


def test_the_users_own_settings_file_sits_between_the_defaults_and_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    own = user_settings_file()
    assert own == tmp_path / "xdg" / "jarvis" / "settings.toml"
    own.parent.mkdir(parents=True)
    own.write_text("[engine]\nbatch_size = 2\nmax_queue = 7\n")
    assert load_settings(environ={}).engine.batch_size == 2
    explicit = tmp_path / "explicit.toml"
    explicit.write_text("[engine]\nbatch_size = 3\n")
    s = load_settings(explicit, environ={})
    assert (s.engine.batch_size, s.engine.max_queue) == (3, 7)
    assert load_settings(explicit, environ={"JARVIS_ENGINE_BATCH_SIZE": "1"}).engine.batch_size == 1
    own.write_text("[engine]\nbatch_size = 99\n")
    with pytest.raises(ConfigError, match=str(own)):
        load_settings(environ={})


def test_models_in_the_users_models_folder_are_in_the_catalog(tmp_path, model_path):
    from jarvis.catalog import Catalog

    s = load_settings(environ={"JARVIS_GENERAL_DATA_DIR": str(tmp_path / "data")})
    assert s.user_models_path == tmp_path / "data" / "models"
    s.user_models_path.mkdir(parents=True)
    shutil.copyfile(model_path, s.user_models_path / "mine.gguf")  # a copy: the catalog folds links
    found = {m.name: m for m in Catalog.from_settings(s).rescan().models}
    assert found["mine"].ok and found["mine"].source == str(s.user_models_path)


def test_generation_defaults_are_the_sampling_model_s_own():
    """settings.toml's [generation] lists every sampling parameter with SamplingParams' default: one source."""
    import tomllib

    from jarvis.sampling import SamplingParams

    shipped = tomllib.loads(DEFAULTS_FILE.read_text())["generation"]
    model = SamplingParams().model_dump()
    assert set(shipped) == set(model)
    assert {k: tuple(v) if isinstance(v, list) else v for k, v in shipped.items()} == model
    assert load_settings(environ={}).generation == SamplingParams()


def test_generation_range_and_stop_list_from_the_environment():
    s = load_settings(environ={"JARVIS_GENERATION_STOP": "END, ###"})
    assert s.generation.stop == ("END", "###")
    with pytest.raises(ConfigError) as e:
        load_settings(environ={"JARVIS_GENERATION_TOP_P": "0"})
    assert "JARVIS_GENERATION_TOP_P" in str(e.value) and "> 0" in str(e.value)
