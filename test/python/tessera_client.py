"""A Tessera client in Python, generated only from proto/ (no Node code involved).

Usage: python3 tessera_client.py COORDINATOR_ADDR INPUT_FILE OUT_DIR
Submits an image job (resize to 64 px wide, PNG), watches it to the end, downloads the outputs and
prints one JSON line with what it saw.
"""
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time

from grpc_tools import protoc
import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.join(HERE, "..", "..", "proto")


def generate(out):
    for name in ("params", "jobs", "worker"):
        rc = protoc.main(["protoc", "-I" + PROTO_ROOT, "--python_out=" + out, "--grpc_python_out=" + out, "tessera/v1/%s.proto" % name])
        if rc != 0:
            raise SystemExit("protoc failed for %s" % name)
    for d in ("tessera", os.path.join("tessera", "v1")):
        open(os.path.join(out, d, "__init__.py"), "a").close()
    sys.path.insert(0, out)


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__.strip().splitlines()[2])
    address, input_file, out_dir = sys.argv[1:4]
    os.makedirs(out_dir, exist_ok=True)
    gen = tempfile.mkdtemp(prefix="tessera-py-")
    try:
        generate(gen)
        run(address, input_file, out_dir)
    finally:
        shutil.rmtree(gen, ignore_errors=True)


def run(address, input_file, out_dir):
    from tessera.v1 import jobs_pb2, jobs_pb2_grpc, params_pb2

    channel = grpc.insecure_channel(address)
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    data = open(input_file, "rb").read()

    def requests():
        yield jobs_pb2.SubmitJobRequest(spec=jobs_pb2.JobSpec(label="python", image=params_pb2.ImageParams(width=64, format="png")))
        yield jobs_pb2.SubmitJobRequest(input=jobs_pb2.InputHeader(name=os.path.basename(input_file), size=len(data)))
        for i in range(0, len(data), 65536):
            yield jobs_pb2.SubmitJobRequest(data=data[i:i + 65536])
        yield jobs_pb2.SubmitJobRequest(input_end=jobs_pb2.InputEnd(sha256=hashlib.sha256(data).hexdigest()))

    job = stub.SubmitJob(requests(), timeout=60)
    events = []
    # Until the final event. A coordinator shutting down (a restart, an upgrade) ends the stream
    # UNAVAILABLE: watch again from the last event seen, for as long as the job may take.
    last, final_seen, attempts = 0, False, 0
    while not final_seen:
        try:
            for ev in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job.id, after_seq=last), timeout=120):
                events.append(ev.type)
                last = ev.seq
                if ev.final:
                    final_seen = True
                    break
        except grpc.RpcError as err:
            attempts += 1
            if err.code() != grpc.StatusCode.UNAVAILABLE or attempts > 60:
                raise
            time.sleep(1)
    final = stub.GetJob(jobs_pb2.GetJobRequest(job_id=job.id, include_subtasks=True), timeout=30)
    written = []
    for out in final.outputs:
        buf = bytearray()
        digest = ""
        for chunk in stub.DownloadOutput(jobs_pb2.DownloadOutputRequest(job_id=job.id, name=out.name), timeout=60):
            buf += chunk.data
            if chunk.sha256:
                digest = chunk.sha256
        if hashlib.sha256(buf).hexdigest() != digest:
            raise SystemExit("checksum mismatch for " + out.name)
        path = os.path.join(out_dir, os.path.basename(out.name))
        with open(path, "wb") as f:
            f.write(buf)
        written.append(path)
    print(json.dumps({
        "id": final.id,
        "state": jobs_pb2.JobState.Name(final.state),
        "events": events,
        "outputs": written,
        "workers": [s.worker for s in final.subtasks],
    }))


if __name__ == "__main__":
    main()
