"""Query a keras-vae model served by TF Serving, over REST or gRPC.

Serve an export (see saved_models/README.md), then:

    python tools/serving_client.py --model mnist encode digit.png more.npy
    python tools/serving_client.py --model mnist decode z.npy --output decoded.npz
    python tools/serving_client.py --model mnist sample --num 16 --seed 0 --output samples.npz
    python tools/serving_client.py --model mnist elbo test.npy --num-samples 10
    python tools/serving_client.py --grpc localhost:8500 --model mnist encode digit.png
    python tools/serving_client.py --model cvae --condition 3 sample --num 16  # a digit 3

REST (`--url`, default http://localhost:8501) needs only the standard library;
gRPC (`--grpc HOST:PORT`) needs `pip install keras-vae[serving]`
(tensorflow-serving-api). Examples are `.npy` arrays (one example, or a batch
along the first axis) or images (PNG, JPEG) scaled to [0, 1]; each is
reshaped to the model's input shape, read from the server's metadata. The
noise of `sample` and `elbo` is drawn here, from `--seed`, and sent with the
request: the served graphs hold no random op. A conditional model's signatures
take a `condition` too: `--condition 3` sends one value (a class label) for
every example, `--condition 3,1,4` one per example (for a `Features(dim)`
condition, dim values, or dim per example).

The request builders (`predict_request`, `encode_request`, ...) are pure
functions from arrays to the JSON body of `POST /v1/models/NAME:predict`.
"""

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

__all__ = [
    "GrpcClient",
    "RestClient",
    "condition_input",
    "decode_request",
    "elbo_noise",
    "elbo_request",
    "encode_request",
    "load_examples",
    "parse_predict_response",
    "predict_request",
    "prior_noise",
    "reconstruct_request",
    "sample_request",
    "signature_inputs",
]

# The one output of `serving_default`: TF Serving returns a single output unnamed.
SINGLE_OUTPUTS = {"serving_default": "reconstruction"}


# === Request builders ===


def predict_request(signature_name, inputs, columnar=False):
    """The JSON body of a `:predict` call: `{"signature_name": ..., "instances": [...]}`.

    In TF Serving's row format (the default) each instance is one example:
    the bare value when the signature has one input, else an object of the
    named inputs. The columnar format sends whole batches under `"inputs"`.

    Args:
        signature_name: The signature to call.
        inputs: `{input name: array}`, all with the same batch size.
        columnar: Whether to use the columnar `"inputs"` format.

    Example:

    >>> predict_request("decode", {"z": np.zeros((1, 2))})
    {'signature_name': 'decode', 'instances': [[0.0, 0.0]]}
    >>> predict_request("sample", {"eps": np.zeros((1, 2)), "u": np.full(1, 0.5)})
    {'signature_name': 'sample', 'instances': [{'eps': [0.0, 0.0], 'u': 0.5}]}
    >>> predict_request("decode", {"z": np.zeros((1, 2))}, columnar=True)
    {'signature_name': 'decode', 'inputs': {'z': [[0.0, 0.0]]}}
    """
    arrays = {name: np.asarray(value, np.float32) for name, value in inputs.items()}
    sizes = {len(array) for array in arrays.values()}
    if len(sizes) != 1:
        raise ValueError(
            f"Expected inputs with one batch size. Received: "
            f"{ {name: array.shape for name, array in arrays.items()} }"
        )
    if columnar:
        return {
            "signature_name": signature_name,
            "inputs": {name: array.tolist() for name, array in arrays.items()},
        }
    if len(arrays) == 1:
        (array,) = arrays.values()
        return {"signature_name": signature_name, "instances": array.tolist()}
    columns = [array.tolist() for array in arrays.values()]
    rows = [dict(zip(arrays, values, strict=True)) for values in zip(*columns, strict=True)]
    return {"signature_name": signature_name, "instances": rows}


def encode_request(x, columnar=False):
    """`encode`: data `(batch, *data_shape)` to the parameters of q(z|x)."""
    return predict_request("encode", {"x": x}, columnar)


def decode_request(z, columnar=False):
    """`decode`: latents `(batch, latent_dim)` to the mean and parameters of p(x|z)."""
    return predict_request("decode", {"z": z}, columnar)


def sample_request(eps, u=None, columnar=False):
    """`sample`: prior noise `eps (batch, latent_dim)`, and `u (batch,)` for mixture priors."""
    inputs = {"eps": eps} if u is None else {"eps": eps, "u": u}
    return predict_request("sample", inputs, columnar)


def elbo_request(x, eps, columnar=False):
    """`elbo`: data and noise `(batch, num_samples, latent_dim)` to per-example bound terms."""
    return predict_request("elbo", {"x": x, "eps": eps}, columnar)


def reconstruct_request(x, columnar=False):
    """`serving_default`: data to its reconstruction."""
    return predict_request("serving_default", {"x": x}, columnar)


def prior_noise(num, latent_dim, seed=None, mixture=False):
    """Inputs of `sample`: `eps ~ N(0, I)` and, for a mixture prior, `u ~ U[0, 1)`."""
    rng = np.random.default_rng(seed)
    noise = {"eps": rng.standard_normal((num, latent_dim)).astype(np.float32)}
    if mixture:
        noise["u"] = rng.uniform(size=num).astype(np.float32)
    return noise


def elbo_noise(batch_size, num_samples, latent_dim, seed=None):
    """The `eps` input of `elbo`: `(batch, num_samples, latent_dim)` standard normals."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch_size, num_samples, latent_dim)).astype(np.float32)


def condition_input(text, shape, batch_size):
    """The `condition` input `(batch, *shape)` from comma-separated values.

    One condition (a label, or `shape` values) is repeated for every example;
    otherwise there must be one per example.

    Example:

    >>> condition_input("3", (), 2).tolist()
    [3.0, 3.0]
    >>> condition_input("3,1", (), 2).tolist()
    [3.0, 1.0]
    """
    try:
        values = np.array([float(value) for value in text.split(",")], np.float32)
    except ValueError:
        raise ValueError(
            f"Expected comma-separated numbers for --condition. Received: {text!r}"
        ) from None
    size = int(np.prod(shape))
    if len(values) == size:
        return np.broadcast_to(values.reshape(shape), (batch_size, *shape)).copy()
    if len(values) == size * batch_size:
        return values.reshape(batch_size, *shape)
    raise ValueError(
        f"Expected --condition with {size} value(s) for every example, or {size * batch_size} "
        f"(one condition for each of the {batch_size} examples). Received: {len(values)} values"
    )


# === Responses and metadata ===


def parse_predict_response(body, signature_name=None):
    """`{output name: array}` from the JSON of a `:predict` response, either format.

    Example:

    >>> parse_predict_response({"predictions": [{"elbo": -90.5, "kl": 20.0}]})
    {'elbo': array([-90.5], dtype=float32), 'kl': array([20.], dtype=float32)}
    """
    if "error" in body:
        raise RuntimeError(f"TF Serving error: {body['error']}")
    if "predictions" in body:
        rows = body["predictions"]
        if rows and isinstance(rows[0], dict):
            return {name: np.asarray([row[name] for row in rows], np.float32) for name in rows[0]}
        return {SINGLE_OUTPUTS.get(signature_name, "output"): np.asarray(rows, np.float32)}
    outputs = body["outputs"]
    if isinstance(outputs, dict):
        return {name: np.asarray(value, np.float32) for name, value in outputs.items()}
    return {SINGLE_OUTPUTS.get(signature_name, "output"): np.asarray(outputs, np.float32)}


def signature_inputs(metadata):
    """`{signature: {input: shape}}` (-1 for dynamic sizes) from model metadata JSON.

    The JSON is that of `GET /v1/models/NAME/metadata`; gRPC metadata is
    converted to the same form.
    """
    definitions = metadata["metadata"]["signature_def"]["signature_def"]
    return {
        name: {
            key: tuple(int(dim["size"]) for dim in tensor["tensor_shape"].get("dim", []))
            for key, tensor in definition.get("inputs", {}).items()
        }
        for name, definition in definitions.items()
    }


# === Clients ===


class RestClient:
    """TF Serving's REST API, `http://HOST:8501/v1/models/NAME[/versions/N]`."""

    def __init__(self, url, model, version=None, columnar=False, timeout=60.0):
        self.base = f"{url.rstrip('/')}/v1/models/{model}"
        if version is not None:
            self.base += f"/versions/{version}"
        self.columnar = columnar
        self.timeout = timeout

    def predict(self, signature_name, inputs):
        body = predict_request(signature_name, inputs, self.columnar)
        return parse_predict_response(self._call(":predict", body), signature_name)

    def metadata(self):
        return self._call("/metadata")

    def _call(self, suffix, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + suffix, data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            message = error.read().decode()
            raise RuntimeError(f"TF Serving answered {error.code}: {message}") from error


class GrpcClient:
    """TF Serving's gRPC `PredictionService`, `HOST:8500`; needs tensorflow-serving-api."""

    def __init__(self, target, model, version=None, timeout=60.0):
        try:
            import grpc
            from tensorflow_serving.apis import prediction_service_pb2_grpc
        except ImportError as error:
            raise ImportError(
                "gRPC needs tensorflow-serving-api: pip install 'keras-vae[serving]'."
            ) from error
        self.channel = grpc.insecure_channel(target)
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.model = model
        self.version = version
        self.timeout = timeout

    def _spec(self, spec, signature_name=None):
        spec.name = self.model
        if self.version is not None:
            spec.version.value = int(self.version)
        if signature_name is not None:
            spec.signature_name = signature_name

    def predict(self, signature_name, inputs):
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, signature_name)
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(np.asarray(value, np.float32)))
        response = self.stub.Predict(request, timeout=self.timeout)
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def metadata(self):
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest()
        self._spec(request.model_spec)
        request.metadata_field.append("signature_def")
        response = self.stub.GetModelMetadata(request, timeout=self.timeout)
        definitions = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(definitions)
        # Field names as in the REST API's metadata: snake_case.
        signature_def = json_format.MessageToDict(definitions, preserving_proto_field_name=True)
        return {"metadata": {"signature_def": signature_def}}


# === Command line ===


def load_examples(paths, data_shape):
    """A float32 batch `(n, *data_shape)` from `.npy` files and images, in order.

    An `.npy` holds one example or a batch; an image becomes one example of
    grey levels in [0, 1]. Each example is reshaped to `data_shape`.
    """
    size = int(np.prod(data_shape))
    examples = []
    for path in map(Path, paths):
        if path.suffix == ".npy":
            array = np.load(path).astype(np.float32)
        else:
            from PIL import Image

            with Image.open(path) as image:
                channels = data_shape[-1] if len(data_shape) == 3 else 1
                image = image.convert("L" if channels == 1 else "RGB")
                array = np.asarray(image, np.float32) / 255.0
        if array.size % size:
            raise ValueError(
                f"Expected examples of {size} values (shape {tuple(data_shape)}) in {path}. "
                f"Received: shape {array.shape}"
            )
        examples.append(array.reshape(-1, *data_shape))
    return np.concatenate(examples)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    server = parser.add_mutually_exclusive_group()
    server.add_argument("--url", default="http://localhost:8501", help="REST endpoint")
    server.add_argument("--grpc", metavar="HOST:PORT", help="use gRPC at this address")
    parser.add_argument("--model", required=True, help="the served model's name")
    parser.add_argument("--version", type=int, help="a model version (default: the latest)")
    parser.add_argument("--columnar", action="store_true", help="REST: columnar `inputs` format")
    parser.add_argument("--output", help=".npz file for the outputs")
    parser.add_argument(
        "--condition", help="a conditional model's condition, e.g. a class label: 3, or 3,1,4"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("encode", "elbo", "reconstruct"):
        command = commands.add_parser(name)
        command.add_argument("examples", nargs="+", help=".npy files or images")
        command.add_argument("--binarize", action="store_true", help="threshold at 0.5")
        if name == "elbo":
            command.add_argument("--num-samples", type=int, default=1)
            command.add_argument("--seed", type=int)
    commands.add_parser("decode").add_argument("latents", help=".npy of (batch, latent_dim)")
    sample = commands.add_parser("sample")
    sample.add_argument("--num", type=int, default=16)
    sample.add_argument("--seed", type=int)
    return parser


def run(args):
    if args.grpc:
        client = GrpcClient(args.grpc, args.model, args.version)
    else:
        client = RestClient(args.url, args.model, args.version, args.columnar)
    shapes = signature_inputs(client.metadata())
    data_shape = shapes["serving_default"]["x"][1:]
    latent_dim = shapes["decode"]["z"][-1] if "decode" in shapes else shapes["sample"]["eps"][-1]
    if args.command in ("encode", "elbo", "reconstruct"):
        x = load_examples(args.examples, data_shape)
        if args.binarize:
            x = (x > 0.5).astype(np.float32)
    conditional = "condition" in shapes["serving_default"]
    if conditional != (args.condition is not None):
        raise ValueError(
            "Expected --condition for this conditional model."
            if conditional
            else "Expected no --condition: this model takes none."
        )

    def predict(name, inputs):
        if conditional:
            batch_size = len(next(iter(inputs.values())))
            shape = shapes[name]["condition"][1:]
            inputs = {**inputs, "condition": condition_input(args.condition, shape, batch_size)}
        return client.predict(name, inputs)

    if args.command == "encode":
        outputs = predict("encode", {"x": x})
    elif args.command == "reconstruct":
        outputs = predict("serving_default", {"x": x})
    elif args.command == "elbo":
        eps = elbo_noise(len(x), args.num_samples, latent_dim, args.seed)
        outputs = predict("elbo", {"x": x, "eps": eps})
    elif args.command == "decode":
        outputs = predict("decode", {"z": np.load(args.latents)})
    else:
        mixture = "u" in shapes["sample"]
        outputs = predict("sample", prior_noise(args.num, latent_dim, args.seed, mixture))
    for name, value in sorted(outputs.items()):
        summary = np.array2string(np.asarray(value).ravel()[:6], precision=3, separator=", ")
        print(f"{name}: shape {tuple(np.shape(value))}, first values {summary}")
    if args.output:
        np.savez(args.output, **outputs)
        print(f"wrote {args.output}")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (ValueError, RuntimeError, OSError, ImportError) as error:
        print(f"serving_client: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
