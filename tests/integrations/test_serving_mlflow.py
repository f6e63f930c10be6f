"""`mlflow models serve` of the packaged model over real HTTP on 127.0.0.1: /ping, /version,
/invocations in every input format (answers equal to in-process predict), 4xx for bad bodies,
concurrent requests. One server for the module (the server runs with no PYTHONPATH and no
MLA_LIBRARY: the model brings its code and native library)."""
import concurrent.futures as cf
import json

import pandas as pd
import pytest
import requests

import mlops_support

PROMPTS = ["hello", "The capital of France is", "abc"]
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(mlops_model_dir):
    with mlops_support.mlflow_serve(mlops_model_dir) as srv:
        yield srv


def expected(pyfunc, prompts, **params):
    out = pyfunc.predict(pd.DataFrame({"prompt": prompts}), params=params or None)
    return [{**r, "token_ids": [int(t) for t in r["token_ids"]]} for r in out.to_dict("records")]


def post(server, body, headers=JSON):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return requests.post(server.url + "/invocations", data=data, headers=headers, timeout=120)


def test_ping_and_version(server):
    r = requests.get(server.url + "/ping", timeout=10)
    assert r.status_code == 200
    import mlflow
    v = requests.get(server.url + "/version", timeout=10)
    assert v.status_code == 200 and v.text.strip() == mlflow.__version__


@pytest.mark.parametrize("fmt", ["dataframe_split", "dataframe_records", "inputs_list", "inputs_columns",
                                 "instances"])
def test_json_formats_equal_in_process(server, mlops_pyfunc, fmt):
    bodies = {
        "dataframe_split": {"dataframe_split": {"columns": ["prompt"], "data": [[p] for p in PROMPTS]}},
        "dataframe_records": {"dataframe_records": [{"prompt": p} for p in PROMPTS]},
        "inputs_list": {"inputs": PROMPTS},
        "inputs_columns": {"inputs": {"prompt": PROMPTS}},
        "instances": {"instances": [{"prompt": p} for p in PROMPTS]},
    }
    body = dict(bodies[fmt], params={"max_new_tokens": 5})
    r = post(server, body)
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert preds == expected(mlops_pyfunc, PROMPTS, max_new_tokens=5)
    assert all(p["backend"] == "mla-cpu" and p["n_tokens"] <= 5 for p in preds)


def test_csv_format(server, mlops_pyfunc):
    csv = "prompt\n" + "\n".join('"%s"' % p for p in PROMPTS) + "\n"
    r = post(server, csv, headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == expected(mlops_pyfunc, PROMPTS)   # default params (32 tokens)


def test_params_change_the_answer(server, mlops_pyfunc):
    r3 = post(server, {"inputs": ["abc"], "params": {"max_new_tokens": 3}}).json()["predictions"][0]
    r9 = post(server, {"inputs": ["abc"], "params": {"max_new_tokens": 9}}).json()["predictions"][0]
    assert r3["n_tokens"] <= 3 and r9["n_tokens"] <= 9
    assert r9["token_ids"][:len(r3["token_ids"])] == r3["token_ids"]
    s1 = post(server, {"inputs": ["abc"], "params": {"max_new_tokens": 8, "temperature": 1.0, "seed": 11}})
    s2 = post(server, {"inputs": ["abc"], "params": {"max_new_tokens": 8, "temperature": 1.0, "seed": 11}})
    assert s1.json() == s2.json()
    assert s1.json()["predictions"] == expected(mlops_pyfunc, ["abc"], max_new_tokens=8, temperature=1.0, seed=11)


@pytest.mark.parametrize("body,ctype,status,needle", [
    ('{"foo": 1}', "application/json", 400, "exactly one of the input fields"),
    ("not json", "application/json", 400, "valid JSON"),
    ('{"dataframe_records": [{"prompt": ""}]}', "application/json", 400, "prompt 0 is empty"),
    ('{"dataframe_records": [{"text": "x"}]}', "application/json", 400, "missing inputs ['prompt']"),
    ('{"inputs": ["x"], "params": {"max_new_tokens": 0}}', "application/json", 400, "max_new_tokens=0 is out of range"),
    ('{"inputs": ["x"], "params": {"top_p": 5.0}}', "application/json", 400, "top_p=5.0 is out of range"),
    ('{"inputs": ["x"], "params": {"max_new_tokens": "lots"}}', "application/json", 400, "max_new_tokens"),
    ("hello", "text/plain", 415, "content types"),
])
def test_bad_bodies_are_4xx_with_a_message(server, body, ctype, status, needle):
    r = post(server, body, headers={"Content-Type": ctype})
    assert r.status_code == status, (r.status_code, r.text)
    assert needle in r.text, r.text


def test_server_survives_errors(server, mlops_pyfunc):
    post(server, "garbage")
    r = post(server, {"inputs": ["hello"], "params": {"max_new_tokens": 2}})
    assert r.status_code == 200
    assert r.json()["predictions"] == expected(mlops_pyfunc, ["hello"], max_new_tokens=2)


def test_concurrent_requests_each_get_their_answer(server, mlops_pyfunc):
    prompts = ["p%d says %s" % (i, "x" * i) for i in range(8)]
    want = {p: expected(mlops_pyfunc, [p], max_new_tokens=6)[0] for p in prompts}

    def one(p):
        r = post(server, {"dataframe_records": [{"prompt": p}], "params": {"max_new_tokens": 6}})
        return p, r.status_code, r.json()

    with cf.ThreadPoolExecutor(8) as ex:
        results = list(ex.map(one, prompts * 2))
    for p, status, body in results:
        assert status == 200, body
        assert body["predictions"] == [want[p]]
