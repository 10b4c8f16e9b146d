"""The serving client's requests, run against exported SavedModels as TF Serving would run them.

No TF Serving binary is needed: `serve_rest` maps a REST body onto a
SavedModel's signature inputs as TF Serving's REST API does (row and
columnar formats), a local HTTP server answers with it, and a local gRPC
server implements `PredictionService` over the same SavedModels.
"""

import concurrent.futures
import http.server
import importlib.util
import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from export_helpers import expected_outputs, exported, make_inputs, trained_vae
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "saved_models" / "README.md"


def _load_client():
    spec = importlib.util.spec_from_file_location(
        "serving_client", ROOT / "tools/serving_client.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


client = _load_client()

BUILDERS = {
    "encode": lambda inputs, columnar: client.encode_request(inputs["x"], columnar),
    "decode": lambda inputs, columnar: client.decode_request(inputs["z"], columnar),
    "sample": lambda inputs, columnar: client.sample_request(
        inputs["eps"], inputs.get("u"), columnar
    ),
    "elbo": lambda inputs, columnar: client.elbo_request(inputs["x"], inputs["eps"], columnar),
    "serving_default": lambda inputs, columnar: client.reconstruct_request(inputs["x"], columnar),
}


# === A stand-in for TF Serving ===


def serve_rest(loaded, body):
    """The response TF Serving's REST API gives to a `:predict` body."""
    function = loaded.signatures[body.get("signature_name", "serving_default")]
    names = sorted(function.structured_input_signature[1])
    if "instances" in body:
        rows = body["instances"]
        if isinstance(rows[0], dict):
            inputs = {name: [row[name] for row in rows] for name in names}
        else:
            (name,) = names  # bare values only for a single input
            inputs = {name: rows}
    else:
        columns = body["inputs"]
        inputs = columns if isinstance(columns, dict) else {names[0]: columns}
    outputs = function(**{name: tf.constant(value, tf.float32) for name, value in inputs.items()})
    outputs = {name: value.numpy().tolist() for name, value in outputs.items()}
    single = len(outputs) == 1
    if "instances" in body:
        size = len(body["instances"])
        rows = [{name: value[i] for name, value in outputs.items()} for i in range(size)]
        return {"predictions": [next(iter(row.values())) for row in rows] if single else rows}
    return {"outputs": next(iter(outputs.values())) if single else outputs}


def metadata(folder):
    """The JSON of `GET /v1/models/NAME/metadata`: the SavedModel's signature defs."""
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(folder) / "saved_model.pb").read_bytes())
    definitions = {
        name: json_format.MessageToDict(definition, preserving_proto_field_name=True)
        for name, definition in saved_model.meta_graphs[0].signature_def.items()
        if name != "__saved_model_init_op"
    }
    return {"metadata": {"signature_def": {"signature_def": definitions}}}


@pytest.fixture(scope="module")
def rest_server():
    """An HTTP server answering `/v1/models/<kind>...` with the export of that kind."""
    loaded = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def _model(self):
            kind = self.path.split("/")[3].split(":")[0]
            if kind not in loaded:
                loaded[kind] = tf.saved_model.load(str(exported(kind)))
            return kind

        def _reply(self, body):
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._reply(metadata(exported(self._model())))

        def do_POST(self):
            kind = self._model()
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self._reply(serve_rest(loaded[kind], body))

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


# === Requests against the signatures ===


@pytest.mark.parametrize("columnar", [False, True], ids=["rows", "columns"])
@pytest.mark.parametrize("kind", ["mnist_mlp", "full_normal_mixture"])
def test_requests_map_onto_the_signatures(kind, columnar):
    vae, x = trained_vae(kind)
    loaded = tf.saved_model.load(str(exported(kind)))
    for signature, build in BUILDERS.items():
        inputs = make_inputs(vae, signature, x[:4])
        body = json.loads(json.dumps(build(inputs, columnar)))  # through JSON text
        outputs = client.parse_predict_response(serve_rest(loaded, body), signature)
        expected = expected_outputs(vae, signature, inputs)
        assert sorted(outputs) == sorted(expected), signature
        for name, value in expected.items():
            np.testing.assert_allclose(
                outputs[name], value, rtol=1e-5, atol=1e-5, err_msg=f"{signature} {name}"
            )


def skeleton(text):
    """JSON text with every array reduced to "A" and every number to "N"."""
    text = re.sub(r"-?\d+(\.\d+)?(e-?\d+)?", "#", text)
    innermost_array = re.compile(r"\[[^\[\]{}\"]*\]")  # holds only #, @, ... and commas
    while innermost_array.search(text):
        text = innermost_array.sub("@", text)
    return json.loads(text.replace("@", '"A"').replace("#", '"N"'))


def readme_examples():
    """(request, response) pairs of the JSON blocks in saved_models/README.md."""
    blocks = re.findall(r"```json\n(.*?)\n```", README.read_text(), re.DOTALL)
    assert len(blocks) % 2 == 0 and blocks
    return list(zip(blocks[::2], blocks[1::2], strict=True))


@pytest.mark.parametrize(
    "request_text, response_text",
    readme_examples(),
    ids=lambda text: re.search(r'"(signature_name|predictions|outputs)"(: "\w+")?', text)[0],
)
def test_readme_examples_are_what_the_client_sends_and_gets(request_text, response_text):
    request = skeleton(request_text)
    signature = request["signature_name"]
    columnar = "inputs" in request
    uses_u = '"u"' in request_text
    kind = "conv_vamp" if uses_u else "mnist_mlp"
    vae, x = trained_vae(kind)
    predictions = skeleton(response_text).get("predictions")
    rows = len(predictions) if isinstance(predictions, list) else 1
    inputs = make_inputs(vae, signature, x[:rows], num_samples=2)
    body = BUILDERS[signature](inputs, columnar)
    assert skeleton(json.dumps(body)) == request
    response = serve_rest(tf.saved_model.load(str(exported(kind))), body)
    assert skeleton(json.dumps(response)) == skeleton(response_text)


# === The clients ===


def test_rest_client_against_a_server(rest_server, tmp_path, capsys):
    vae, x = trained_vae("mnist_mlp")
    rest = client.RestClient(rest_server, "mnist_mlp")
    shapes = client.signature_inputs(rest.metadata())
    assert shapes["elbo"] == {"x": (-1, 28, 28, 1), "eps": (-1, -1, 4)}
    outputs = rest.predict("encode", {"x": x[:3]})
    np.testing.assert_allclose(outputs["loc"], vae.posterior_parameters(x[:3])["loc"], atol=1e-5)

    np.save(tmp_path / "digits.npy", x[:2])
    output = tmp_path / "terms.npz"
    args = [
        "--url",
        rest_server,
        "--model",
        "mnist_mlp",
        "--output",
        str(output),
        "elbo",
        str(tmp_path / "digits.npy"),
        "--num-samples",
        "3",
        "--seed",
        "1",
    ]
    assert client.main(args) == 0
    assert "elbo: shape (2,)" in capsys.readouterr().out
    eps = client.elbo_noise(2, 3, 4, seed=1)
    expected = expected_outputs(vae, "elbo", {"x": x[:2], "eps": eps})
    np.testing.assert_allclose(np.load(output)["elbo"], expected["elbo"], rtol=1e-5)


def test_cli_samples_from_a_mixture_prior(rest_server, tmp_path):
    output = tmp_path / "samples.npz"
    args = [
        "--url",
        rest_server,
        "--model",
        "full_normal_mixture",
        "--output",
        str(output),
        "sample",
        "--num",
        "5",
        "--seed",
        "0",
    ]
    assert client.main(args) == 0
    vae, _ = trained_vae("full_normal_mixture")
    noise = client.prior_noise(5, 3, seed=0, mixture=True)
    np.testing.assert_allclose(
        np.load(output)["z"], expected_outputs(vae, "sample", noise)["z"], atol=1e-5
    )


def test_images_become_examples_of_the_input_shape(tmp_path):
    from PIL import Image

    pixels = np.zeros((28, 28), np.uint8)
    pixels[10:20, 12:16] = 255
    Image.fromarray(pixels).save(tmp_path / "digit.png")
    np.save(tmp_path / "flat.npy", np.ones((2, 784), np.float32))
    x = client.load_examples([tmp_path / "digit.png", tmp_path / "flat.npy"], (28, 28, 1))
    assert x.shape == (3, 28, 28, 1)
    np.testing.assert_array_equal(x[0, ..., 0], pixels / 255.0)
    with pytest.raises(ValueError, match="64 values"):
        client.load_examples([tmp_path / "digit.png"], (8, 8, 1))


def test_grpc_client_against_a_prediction_service(tmp_path):
    grpc = pytest.importorskip("grpc")
    apis = pytest.importorskip("tensorflow_serving.apis.prediction_service_pb2_grpc")
    from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2

    vae, x = trained_vae("mnist_mlp")
    folder = exported("mnist_mlp")
    loaded = tf.saved_model.load(str(folder))

    class PredictionService(apis.PredictionServiceServicer):
        def Predict(self, request, context):
            function = loaded.signatures[request.model_spec.signature_name]
            inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
            response = predict_pb2.PredictResponse()
            for name, value in function(**inputs).items():
                response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
            return response

        def GetModelMetadata(self, request, context):
            definitions = get_model_metadata_pb2.SignatureDefMap()
            signature_defs = metadata(folder)["metadata"]["signature_def"]
            json_format.ParseDict(signature_defs, definitions)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.metadata["signature_def"].Pack(definitions)
            return response

    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=2))
    apis.add_PredictionServiceServicer_to_server(PredictionService(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        remote = client.GrpcClient(f"127.0.0.1:{port}", "mnist", version=1)
        assert client.signature_inputs(remote.metadata())["decode"] == {"z": (-1, 4)}
        inputs = make_inputs(vae, "decode", x[:3])
        outputs = remote.predict("decode", inputs)
        expected = expected_outputs(vae, "decode", inputs)
        np.testing.assert_allclose(outputs["mean"], expected["mean"], atol=1e-5)
    finally:
        server.stop(None)
