"""A client built from server reflection alone (as grpcurl is) that uses the streaming methods too:
SubmitJob (client stream: spec, input, data, input_end), WatchJob (server stream) until the job ends,
DownloadOutput (server stream), and ListWorkers with a worker's labels (the map field).

Usage: python3 reflection_stream_probe.py COORDINATOR_ADDR REFLECTION_PROTO VERSION(v1|v1alpha); prints one JSON line.
"""
import hashlib
import json
import os
import shutil
import sys
import tempfile

import grpc
from google.protobuf import json_format

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reflection_client import GetMessageClass, reflected_pool, reflection_stubs  # noqa: E402


def main():
    address, proto, version = sys.argv[1:4]
    out = tempfile.mkdtemp(prefix="tessera-py-refl-")
    try:
        print(json.dumps(probe(address, reflection_stubs(proto, out), version)))
    finally:
        shutil.rmtree(out, ignore_errors=True)


def probe(address, RV, version):
    channel = grpc.insecure_channel(address)
    result = {}
    try:
        pool = reflected_pool(channel, RV, version)
        service = pool.FindServiceByName("tessera.v1.JobService")
        labels = pool.FindMessageTypeByName("tessera.v1.Capabilities").fields_by_name["labels"]
        result["labels_is_map"] = labels.message_type.GetOptions().map_entry
        result["labels_entry"] = labels.message_type.full_name
    except Exception as e:  # noqa: BLE001 (what a dynamic client reports)
        result["pool_error"] = str(e).strip().splitlines()[-1]
        return result

    def method(name):
        m = service.methods_by_name[name]
        return GetMessageClass(m.input_type), GetMessageClass(m.output_type)

    # SubmitJob: a client stream.
    Req, Job = method("SubmitJob")
    payload = os.urandom(200_000)
    msgs = [
        Req(spec={"label": "reflection-probe", "passthrough": {}, "input_count": 1}),
        Req(input={"name": "blob.bin", "size": len(payload)}),
        Req(data=payload[:100_000]),
        Req(data=payload[100_000:]),
        Req(input_end={"sha256": hashlib.sha256(payload).hexdigest()}),
    ]
    submit = channel.stream_unary("/tessera.v1.JobService/SubmitJob", request_serializer=Req.SerializeToString, response_deserializer=Job.FromString)
    try:
        job = submit(iter(msgs), timeout=30)
    except grpc.RpcError as e:
        result["SubmitJob"] = e.code().name + ": " + e.details()
        return result
    result["SubmitJob"] = job.id != ""
    # WatchJob: a server stream, to the end of the job.
    WReq, Event = method("WatchJob")
    watch = channel.unary_stream("/tessera.v1.JobService/WatchJob", request_serializer=WReq.SerializeToString, response_deserializer=Event.FromString)
    types = []
    state = None
    outputs = []
    try:
        for ev in watch(WReq(job_id=job.id), timeout=60):
            types.append(ev.type)
            if ev.type == "job_state":
                state = ev.job_state
            if ev.type == "output":
                outputs.append(ev.output.name)
            if ev.final:
                break
    except grpc.RpcError as e:
        result["WatchJob"] = e.code().name + ": " + e.details()
        return result
    result["WatchJob"] = sorted(set(types))
    result["outputs"] = outputs
    result["final_state"] = service.file.enum_types_by_name["JobState"].values_by_number[state].name if state is not None else None
    # DownloadOutput: a server stream.
    DReq, Chunk = method("DownloadOutput")
    dl = channel.unary_stream("/tessera.v1.JobService/DownloadOutput", request_serializer=DReq.SerializeToString, response_deserializer=Chunk.FromString)
    got = b""
    try:
        for c in dl(DReq(job_id=job.id, name=outputs[0] if outputs else "blob.bin"), timeout=30):
            got += c.data
        result["DownloadOutput"] = got == payload
    except grpc.RpcError as e:
        result["DownloadOutput"] = e.code().name + ": " + e.details()
    # ListWorkers: the labels map.
    LReq, LRes = method("ListWorkers")
    lw = channel.unary_unary("/tessera.v1.JobService/ListWorkers", request_serializer=LReq.SerializeToString, response_deserializer=LRes.FromString)
    res = lw(LReq(), timeout=10)
    result["labels"] = [dict(w.capabilities.labels) for w in res.workers]
    result["ListWorkers_json"] = json_format.MessageToDict(res)["workers"][0].get("capabilities", {}).get("labels")
    return result


if __name__ == "__main__":
    main()
