"""The configuration system, driven through real config files on disk."""

import json
import logging
import textwrap

import pytest

from pipeforge.config import get_config, initialize_config, load_config
from pipeforge.errors import ConfigError, MissingKeyError
from pipeforge.interfaces import Background


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


class Recorder:
    """A component that remembers its arguments and whether it was initialized."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.initialized_with = None

    def initialize_component(self, config):
        self.initialized_with = config


class Ticker(Background):
    def __init__(self):
        self.running = False

    def start(self):
        self.running = True

    def stop(self, timeout=None):
        self.running = False


class TestFormats:
    def test_python_dict_file_sees_environ_and_here(self, tmp_path, monkeypatch):
        monkeypatch.setenv("PF_TEST_USER", "alice")
        path = write(
            tmp_path,
            "config.py",
            """
            {
                'x-user': environ['PF_TEST_USER'],
                'x-data': '{}/data.csv'.format(here),
            }
            """,
        )
        config = load_config([path])
        assert config["x-user"] == "alice"
        assert config["x-data"] == f"{tmp_path}/data.csv"
        assert config.here == str(tmp_path)
        assert config.sources == [path]

    def test_yaml_reads_environment_with_defaults_and_here(self, tmp_path, monkeypatch):
        monkeypatch.setenv("PF_TEST_URL", "sqlite:///x.db")
        monkeypatch.delenv("PF_TEST_PORT", raising=False)
        path = write(
            tmp_path,
            "config.yaml",
            """
            x-url: ${PF_TEST_URL}
            x-port: ${PF_TEST_PORT:-5000}
            x-debug: ${PF_TEST_DEBUG:-false}
            x-path: ${here}/iris.data
            x-mixed: "at ${PF_TEST_PORT:-80}/x"
            x-literal: "$${NOT_EXPANDED}"
            """,
        )
        config = load_config(path)
        assert config["x-url"] == "sqlite:///x.db"
        assert config["x-port"] == 5000  # a value standing alone keeps its YAML type
        assert config["x-debug"] is False
        assert config["x-path"] == f"{tmp_path}/iris.data"
        assert config["x-mixed"] == "at 80/x"
        assert config["x-literal"] == "${NOT_EXPANDED}"

    def test_json_builds_components(self, tmp_path):
        path = tmp_path / "config.json"
        path.write_text(
            json.dumps(
                {"model": {"__factory__": "sklearn.linear_model.LogisticRegression", "C": 0.5}}
            )
        )
        config = load_config([str(path)])
        assert type(config["model"]).__name__ == "LogisticRegression"
        assert config["model"].C == 0.5

    def test_later_files_override_top_level_keys(self, tmp_path):
        a = write(tmp_path, "a.py", "{'x-a': 42, 'x-b': 6}")
        b = write(tmp_path, "b.yaml", "x-b: 7\nx-c: 99\n")
        config = load_config(f"{a},{b}")
        assert {k: config[f"x-{k}"] for k in "abc"} == {"a": 42, "b": 7, "c": 99}

    def test_unknown_file_type(self, tmp_path):
        path = write(tmp_path, "config.toml", "a = 1")
        with pytest.raises(ConfigError, match=r"config.toml: unknown config file type '.toml'"):
            load_config([path])


class TestFactories:
    def test_nested_components_are_built_depth_first(self, tmp_path):
        path = write(
            tmp_path,
            "config.py",
            """
            {
                'model': {
                    '__factory__': 'sklearn.pipeline.Pipeline',
                    'steps': [
                        ['scale', {'__factory__': 'sklearn.preprocessing.StandardScaler'}],
                        ['clf', {'!': 'sklearn.linear_model.LogisticRegression', 'C': 2.0}],
                    ],
                },
            }
            """,
        )
        model = load_config([path])["model"]
        assert [name for name, _ in model.steps] == ["scale", "clf"]
        assert model.named_steps["clf"].C == 2.0

    def test_colon_form_and_palladium_names(self, tmp_path):
        path = write(
            tmp_path,
            "config.py",
            """
            {
                '_rec': {'__factory__': 'tests.test_config:Recorder', 'x': 1},
                '_err': {'__factory__': 'palladium.errors.ConfigError', 'problem': 'p'},
            }
            """,
        )
        config = load_config([path])
        assert config["_rec"].kwargs == {"x": 1}
        assert isinstance(config["_err"], ConfigError)

    def test_initialize_component_gets_the_finished_config(self, tmp_path):
        path = write(tmp_path, "c.py", "{'_rec': {'__factory__': 'tests.test_config.Recorder'}}")
        config = load_config([path])
        assert config["_rec"].initialized_with is config

    def test_mode_keeps_a_component_only_in_its_mode(self, tmp_path):
        path = write(
            tmp_path,
            "c.py",
            """
            {
                '_fit_only': {'__factory__': 'tests.test_config.Recorder', '__mode__': 'fit'},
                '_always': {'__factory__': 'tests.test_config.Recorder'},
            }
            """,
        )
        assert "_fit_only" in load_config([path], __mode__="fit")
        predict = load_config([path], __mode__="predict")
        assert "_fit_only" not in predict and "_always" in predict
        assert predict.mode == "predict" and predict["__mode__"] == "predict"

    def test_background_components_start_and_stop_only_when_asked(self, tmp_path):
        path = write(tmp_path, "c.py", "{'ticker': {'__factory__': 'tests.test_config.Ticker'}}")
        config = load_config([path])
        ticker = config["ticker"]
        assert config.background() == [ticker]
        assert not ticker.running  # parsing a config never starts threads
        config.start()
        assert ticker.running
        config.stop()
        assert not ticker.running


class TestCopyAndPython:
    def test_copy_with_overrides(self, tmp_path):
        path = write(
            tmp_path,
            "c.py",
            """
            {
                '_train': {'path': 'train.csv', 'sep': ',', 'names': ['a', 'b']},
                '_test': {'__copy__': '_train', 'path': 'test.csv'},
                '_names': {'__copy__': '_train.names'},
            }
            """,
        )
        config = load_config([path])
        assert config["_test"] == {"path": "test.csv", "sep": ",", "names": ["a", "b"]}
        assert config["_names"] == ["a", "b"]
        config["_names"].append("c")  # a deep copy: the original is untouched
        assert config["_train"]["names"] == ["a", "b"]

    def test_copy_default_when_target_is_missing(self, tmp_path):
        path = write(tmp_path, "c.py", "{'x-y': {'__copy__': 'nowhere', '__default__': 4}}")
        assert load_config([path])["x-y"] == 4

    def test_self_copy_in_a_later_file_extends_the_earlier_definition(self, tmp_path):
        a = write(
            tmp_path,
            "a.py",
            "{'model': {'__factory__': 'tests.test_config.Recorder', 'a': 1, 'b': 2}}",
        )
        b = write(tmp_path, "b.yaml", "model:\n  __copy__: model\n  b: 3\n")
        assert load_config([a, b])["model"].kwargs == {"a": 1, "b": 3}

    def test_python_statements_see_the_config_as_C(self, tmp_path):
        path = write(
            tmp_path,
            "c.py",
            """
            {
                '_base': 10,
                '__python__': "C['derived'] = C['_base'] * 2",
                '_nested': {'__python__': ["C['more'] = 1", "C['_base'] += 1"], 'keep': True},
            }
            """,
        )
        config = load_config([path])
        assert (config["derived"], config["more"], config["_base"]) == (20, 1, 11)
        assert config["_nested"] == {"keep": True}


class TestErrors:
    """Every error names the file, the key path and the problem, in one line."""

    @pytest.mark.parametrize(
        ("name", "text", "expected"),
        [
            (
                "c.py",
                "{'model': {'__factory__': 'sklearn.linear_model.LogisticRegresion'}}",
                "c.py: model.__factory__: cannot import 'sklearn.linear_model.LogisticRegresion'",
            ),
            (
                "c.py",
                "{'model': {'__factory__': 'no_such_package.Thing'}}",
                "c.py: model.__factory__: cannot import 'no_such_package.Thing'",
            ),
            (
                "c.py",
                "{'model': {'__factory__': 'sklearn.linear_model.LogisticRegression', 'Cx': 1}}",
                "c.py: model.Cx: unknown keyword 'Cx' of sklearn.linear_model.LogisticRegression; "
                "did you mean 'C'? (accepted: penalty, C, ",
            ),
            (
                "c.py",
                "{'scorin': 'accuracy'}",
                "c.py: scorin: unknown key 'scorin'; did you mean 'scoring'?",
            ),
            (
                "c.py",
                "{'_a': {'b': [{'__factory__': 'json.nope'}]}}",
                "c.py: _a.b[0].__factory__: cannot import 'json.nope'",
            ),
            ("c.py", "{'a': 1,,}", "c.py:1: syntax error"),
            ("c.yaml", "a: [1, 2\nb: 3\n", "c.yaml:2: YAML syntax error"),
            ("c.json", '{"a": 1,}', "c.json:1: JSON syntax error"),
            ("c.yaml", "a: {__copy__: b}\nb: {__copy__: a}\n", "cycle in __copy__"),
            (
                "c.yaml",
                "a: {__copy__: nowhere}\n",
                "c.yaml: a.__copy__: __copy__ target 'nowhere' not found",
            ),
            (
                "c.yaml",
                "a: ${PF_TEST_UNSET_VAR}\n",
                "c.yaml: a: environment variable 'PF_TEST_UNSET_VAR' is not set",
            ),
            (
                "c.py",
                "{'a': environ['PF_TEST_UNSET_VAR']}",
                "c.py: environment variable 'PF_TEST_UNSET_VAR' is not set",
            ),
            ("c.py", "[1, 2]", "c.py: a config file must hold a dict at the top; got list"),
            (
                "c.py",
                "{'__python__': 'undefined_name'}",
                "c.py: __python__: __python__ failed: NameError",
            ),
        ],
    )
    def test_one_line_naming_file_key_and_problem(
        self, tmp_path, monkeypatch, name, text, expected
    ):
        monkeypatch.delenv("PF_TEST_UNSET_VAR", raising=False)
        path = write(tmp_path, name, text)
        with pytest.raises(ConfigError) as info:
            load_config([path])
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith(str(tmp_path))
        assert expected in message

    def test_missing_file(self, tmp_path):
        with pytest.raises(ConfigError, match=r"nope.py: config file not found"):
            load_config([str(tmp_path / "nope.py")])

    def test_missing_entry_names_the_files_and_the_key(self, tmp_path):
        path = write(tmp_path, "c.py", "{'_a': 1}")
        config = load_config([path])
        with pytest.raises(MissingKeyError) as info:
            config["model_persister"]
        assert (
            str(info.value)
            == f"{path}: missing required entry 'model_persister'; add it to the configuration"
        )
        assert isinstance(info.value, KeyError)  # callers catching KeyError still work
        assert config.get("model_persister") is None

    def test_component_that_fails_to_initialize(self, tmp_path):
        path = write(
            tmp_path, "c.py", "{'_x': {'__factory__': 'fractions.Fraction', 'numerator': 'ten'}}"
        )
        with pytest.raises(
            ConfigError, match=r"c.py: _x: cannot create fractions.Fraction: ValueError: "
        ):
            load_config([path])


class TestEnvironment:
    def test_unset_config_variable(self, monkeypatch):
        monkeypatch.delenv("PIPEFORGE_CONFIG", raising=False)
        monkeypatch.delenv("PALLADIUM_CONFIG", raising=False)
        with pytest.raises(ConfigError, match="PIPEFORGE_CONFIG is not set"):
            initialize_config()

    def test_palladium_config_variable_is_honoured(self, tmp_path, monkeypatch):
        path = write(
            tmp_path,
            "c.py",
            "{'model': {'__factory__': 'palladium.interfaces.annotate', 'obj': None}}",
        )
        monkeypatch.delenv("PIPEFORGE_CONFIG", raising=False)
        monkeypatch.setenv("PALLADIUM_CONFIG", path)
        assert initialize_config(__mode__="fit")["model"] == {}

    def test_pipeforge_config_wins_and_lists_several_files(self, tmp_path, monkeypatch):
        a = write(tmp_path, "a.py", "{'_a': 1, '_b': 1}")
        b = write(tmp_path, "b.json", '{"_b": 2}')
        monkeypatch.setenv("PALLADIUM_CONFIG", str(tmp_path / "ignored.py"))
        monkeypatch.setenv("PIPEFORGE_CONFIG", f"{a}, {b}")
        config = initialize_config()
        assert (config["_a"], config["_b"]) == (1, 2)
        assert get_config() is config  # cached until initialized again

    def test_logging_entry_is_applied(self, tmp_path, monkeypatch):
        logfile = tmp_path / "pf.log"
        path = write(
            tmp_path,
            "c.py",
            f"""
            {{
                'logging': {{
                    'version': 1,
                    'disable_existing_loggers': False,
                    'handlers': {{'file': {{'class': 'logging.FileHandler', 'filename': {str(logfile)!r}}}}},
                    'loggers': {{'pf_test_logger': {{'handlers': ['file'], 'level': 'INFO'}}}},
                }},
            }}
            """,
        )
        monkeypatch.setenv("PIPEFORGE_CONFIG", path)
        initialize_config()
        logger = logging.getLogger("pf_test_logger")
        logger.info("hello from the test")
        for handler in logger.handlers:
            handler.close()
        logger.handlers.clear()
        assert "hello from the test" in logfile.read_text()

    def test_invalid_logging_entry(self, tmp_path, monkeypatch):
        path = write(tmp_path, "c.py", "{'logging': {'version': 99}}")
        monkeypatch.setenv("PIPEFORGE_CONFIG", path)
        with pytest.raises(ConfigError, match=r"c.py: logging: invalid logging configuration"):
            initialize_config()


class Counted(Recorder):
    """A Recorder that counts how many were built, to see when an entry is built."""

    built = 0

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        type(self).built += 1


class Sibling(Recorder):
    """Looks up another entry when initialized, as the predict service does."""

    def initialize_component(self, config):
        super().initialize_component(config)
        self.sibling = config["_first"]


class TestLazy:
    @pytest.fixture(autouse=True)
    def _reset(self):
        Counted.built = 0

    def config_file(self, tmp_path, extra=""):
        return write(
            tmp_path,
            "lazy.py",
            f"""
            {{
                '_first': {{'__factory__': 'tests.test_config.Counted', 'n': 1}},
                '_second': {{'__factory__': 'tests.test_config.Counted', 'n': 2}},
                '_copy': {{'__copy__': '_first', 'n': 3}},
                '_fit_only': {{'__factory__': 'tests.test_config.Counted', '__mode__': 'fit'}},
                '_plain': {{'a': [1, 2]}},
                {extra}
            }}
            """,
        )

    def test_an_entry_is_built_and_initialized_when_first_read(self, tmp_path):
        config = load_config([self.config_file(tmp_path)], lazy=True, __mode__="predict")
        assert Counted.built == 0
        assert "_first" in config and "_fit_only" not in config  # dropped for its mode
        first = config["_first"]
        assert Counted.built == 1 and first.kwargs == {"n": 1}
        assert first.initialized_with is config
        assert config["_first"] is first and Counted.built == 1
        assert config.get("_copy").kwargs == {"n": 3} and Counted.built == 2
        assert config["_plain"] == {"a": [1, 2]}
        assert [key for key, _ in config.components] == ["_first", "_copy"]

    def test_build_all_or_some(self, tmp_path):
        config = load_config([self.config_file(tmp_path)], lazy=True)
        config.build(["_second", "not-there"])
        assert Counted.built == 1 and config.components[0][0] == "_second"
        assert isinstance(dict(config)["_first"], Counted)  # copying reads every entry
        assert Counted.built == 4

    def test_eager_by_default(self, tmp_path):
        config = load_config([self.config_file(tmp_path)], __mode__="fit")
        assert Counted.built == 4
        assert sorted(key for key, _ in config.components) == [
            "_copy",
            "_first",
            "_fit_only",
            "_second",
        ]

    def test_initializing_reads_a_sibling_lazily(self, tmp_path):
        extra = "'_uses': {'__factory__': 'tests.test_config.Sibling'},"
        config = load_config([self.config_file(tmp_path, extra)], lazy=True)
        uses = config["_uses"]
        assert uses.sibling is config["_first"] and Counted.built == 1

    def test_an_error_names_file_and_key_when_the_entry_is_read(self, tmp_path):
        extra = "'_broken': {'__factory__': 'tests.test_config.NoSuchThing'},"
        path = self.config_file(tmp_path, extra)
        config = load_config([path], lazy=True)  # building nothing, finding nothing wrong
        assert config["_first"].kwargs == {"n": 1}
        with pytest.raises(ConfigError) as info:
            config["_broken"]
        assert str(info.value).startswith(f"{path}: _broken.__factory__: cannot import")
        with pytest.raises(ConfigError, match="_broken.__factory__"):
            config.get("_broken")  # still unbuilt: reading it again fails again
        with pytest.raises(ConfigError, match="_broken.__factory__"):
            load_config([path])
