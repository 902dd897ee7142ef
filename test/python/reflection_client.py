"""What a client that knows nothing of Tessera but its address does, as grpcurl does: it learns the
API from the coordinator's server reflection and builds the message types from the file descriptors
it is sent (reflection_stream_probe.py calls the methods with them).
"""
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


def reflected_pool(channel, RV, version="v1"):
    """The descriptor pool of tessera.v1 as reflection describes it: the files defining both services,
    then every file they depend on, by name (as grpcurl asks). Raises what the pool refuses."""
    info = channel.stream_stream(
        "/grpc.reflection.%s.ServerReflection/ServerReflectionInfo" % version,
        request_serializer=RV.ServerReflectionRequest.SerializeToString,
        response_deserializer=RV.ServerReflectionResponse.FromString,
    )

    def ask(**question):
        return list(info(iter([RV.ServerReflectionRequest(**question)]), timeout=10))[0]

    files = {}

    def take(answer):
        for raw in answer.file_descriptor_response.file_descriptor_proto:
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
            files.setdefault(fd.name, fd)

    take(ask(file_containing_symbol="tessera.v1.JobService"))
    take(ask(file_containing_symbol="tessera.v1.WorkerService"))
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

    for name in files:
        add(name)
    return pool
