"""A client that knows nothing of Tessera but its address, as grpcurl is: it learns the API from the
coordinator's server reflection (grpc.reflection.v1), builds the message types from the file
descriptors it is sent, and calls tessera.v1.JobService/ListWorkers and ListJobs with them.

Usage: python3 reflection_probe.py COORDINATOR_ADDR REFLECTION_PROTO; prints one JSON line.
REFLECTION_PROTO: grpc/reflection/v1/reflection.proto (the copy @grpc/reflection ships).
"""
import json
import os
import shutil
import sys
import tempfile

from grpc_tools import protoc
import grpc
from google.protobuf import descriptor_pb2, descriptor_pool

try:
    from google.protobuf.message_factory import GetMessageClass
except ImportError:  # protobuf < 4
    from google.protobuf.message_factory import MessageFactory

    def GetMessageClass(descriptor):
        return MessageFactory().GetPrototype(descriptor)


def reflection_stubs(proto, out):
    # Under a name of its own: a generated grpc/reflection/... package would stand beside grpcio's own `grpc`.
    shutil.copy(proto, os.path.join(out, "tessera_probe_reflection.proto"))
    if protoc.main(["protoc", "-I" + out, "--python_out=" + out, "tessera_probe_reflection.proto"]) != 0:
        raise SystemExit("protoc failed for the reflection proto")
    sys.path.insert(0, out)
    import tessera_probe_reflection_pb2 as RV  # noqa: E402

    return RV


def main():
    address, proto = sys.argv[1:3]
    out = tempfile.mkdtemp(prefix="tessera-py-refl-")
    try:
        print(json.dumps(probe(address, reflection_stubs(proto, out))))
    finally:
        shutil.rmtree(out, ignore_errors=True)


def probe(address, RV):
    channel = grpc.insecure_channel(address)
    info = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=RV.ServerReflectionRequest.SerializeToString,
        response_deserializer=RV.ServerReflectionResponse.FromString,
    )

    def ask(**question):
        return list(info(iter([RV.ServerReflectionRequest(**question)]), timeout=10))[0]

    result = {"services": [s.name for s in ask(list_services="").list_services_response.service]}
    # What grpcurl does: the file defining the service, then every file it depends on, by name.
    files = {}

    def take(answer):
        for raw in answer.file_descriptor_response.file_descriptor_proto:
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
            files.setdefault(fd.name, fd)

    take(ask(file_containing_symbol="tessera.v1.JobService"))
    wanted = [d for f in list(files.values()) for d in f.dependency]
    while wanted:
        name = wanted.pop()
        if name not in files:
            take(ask(file_by_filename=name))
            wanted += list(files[name].dependency)
    pool = descriptor_pool.DescriptorPool()
    added = set()

    def add(name):
        if name in added:
            return
        for dep in files[name].dependency:
            add(dep)
        pool.Add(files[name])
        added.add(name)

    try:
        for name in files:
            add(name)
        service = pool.FindServiceByName("tessera.v1.JobService")
    except Exception as e:  # noqa: BLE001 (what a dynamic client reports)
        result["pool_error"] = str(e).strip().splitlines()[-1]
        return result
    for method in ("ListWorkers", "ListJobs"):
        m = service.methods_by_name[method]
        Req, Res = GetMessageClass(m.input_type), GetMessageClass(m.output_type)
        call = channel.unary_unary("/tessera.v1.JobService/" + method, request_serializer=Req.SerializeToString, response_deserializer=Res.FromString)
        try:
            res = call(Req(), timeout=10)
            result[method] = len(res.workers if method == "ListWorkers" else res.jobs)
        except grpc.RpcError as e:
            result[method] = e.code().name + ": " + e.details()
    return result


if __name__ == "__main__":
    main()
