#!/usr/bin/env python3
"""qdm's gRPC API from Python, with stubs generated from proto/qdm/v1 (Debian: python3-grpcio,
python3-protobuf, and protobuf-compiler-grpc's grpc_python_plugin):

    mkdir -p gen && protoc -I proto -I /usr/share/gocode/src/github.com/grpc-ecosystem/grpc-gateway/third_party/googleapis \\
        --python_out=gen --grpc_out=gen --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin \\
        proto/qdm/v1/*.proto google/api/annotations.proto google/api/http.proto
    PYTHONPATH=gen python3 examples/python/qdm_client.py --server localhost:50051 --model fmnist-t2i \\
        --prompt "a photo of a sneaker" --out sneaker.png [--token TOKEN --ca ca.pem]

Lists the service's models, then samples one image from a model (a prompt for a text-to-image
model, a class label for a class-conditional one) with SampleStream, printing its progress,
and writes the PNG.
"""
import argparse
import sys

import grpc

from qdm.v1 import models_pb2, models_pb2_grpc, sampling_pb2, sampling_pb2_grpc


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", default="localhost:50051")
    p.add_argument("--token", help="bearer token, when the service requires one")
    p.add_argument("--ca", help="PEM CA of the service's certificate: connect with TLS")
    p.add_argument("--model", required=True, help="a model or artifact name (qdm models list)")
    p.add_argument("--prompt", help="text-to-image models: what to draw")
    p.add_argument("--class-label", help="class-conditional models: a class name or index")
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument("--steps", type=int, default=0, help="0: the model's default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="image.png")
    a = p.parse_args()

    if a.ca:
        channel = grpc.secure_channel(a.server, grpc.ssl_channel_credentials(open(a.ca, "rb").read()))
    else:
        channel = grpc.insecure_channel(a.server)
    metadata = [("authorization", "Bearer " + a.token)] if a.token else []

    try:
        return run(a, channel, metadata)
    except grpc.RpcError as e:
        print(f"{e.code().name}: {e.details()}", file=sys.stderr)
        return 1


def run(a, channel, metadata):
    models = models_pb2_grpc.ModelsStub(channel)
    listed = models.List(models_pb2.ListModelsRequest(include_artifacts=True), metadata=metadata, timeout=30)
    for m in listed.models:
        print(f"{'artifact' if m.quantized else 'model':8} {m.name}")
    info = models.Describe(models_pb2.DescribeModelRequest(name=a.model), metadata=metadata, timeout=30)

    request = sampling_pb2.SampleRequest(num_images=1, seed=a.seed, guidance_scale=a.guidance)
    if info.quantized:
        request.artifact = a.model
    else:
        request.model = a.model
    request.sampler.steps = a.steps
    if a.prompt is not None:
        request.prompt.append(a.prompt)
    if a.class_label is not None:
        request.class_labels.append(a.class_label)
    sampling = sampling_pb2_grpc.SamplingStub(channel)
    for event in sampling.SampleStream(request, metadata=metadata, timeout=600):
        kind = event.WhichOneof("event")
        if kind == "progress":
            print(f"step {event.progress.step}/{event.progress.steps}", file=sys.stderr)
        elif kind == "image":
            with open(a.out, "wb") as f:
                f.write(event.image.png)
            print(f"wrote {a.out} (seed {event.image.seed})")
        elif kind == "done":
            print(f"{event.done.compute_seconds:.2f} s of compute", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
