"""Probes of the JobService contract from a client generated only from proto/ (no Node code).

Usage: python3 api_probe.py SCENARIO COORDINATOR_ADDR [ARGS...]; prints one JSON line.

  rid-outdir ADDR DIR_A DIR_B   the same request_id and spec, but shared_output_dir A then B
  submit-many ADDR N            a passthrough job of N subtasks, on a channel with gRPC's default
                                4 MiB receive limit; then cancels it (and any made again)
"""
import json
import os
import shutil
import sys
import tempfile
import uuid

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tessera_client import generate  # noqa: E402  (stubs generated from proto/ at run time)


def failure(e):
    return {"code": e.code().name, "details": e.details()}


def requests(J, spec, files):
    yield J.SubmitJobRequest(spec=spec)
    for name, data in files:
        yield J.SubmitJobRequest(input=J.InputHeader(name=name, size=len(data)))
        yield J.SubmitJobRequest(data=data)
        yield J.SubmitJobRequest(input_end=J.InputEnd())


def rid_outdir(address, dir_a, dir_b):
    from tessera.v1 import jobs_pb2 as J, jobs_pb2_grpc as JG, params_pb2 as P

    stub = JG.JobServiceStub(grpc.insecure_channel(address))
    rid = str(uuid.uuid4())
    spec = lambda d: J.JobSpec(label="rid", request_id=rid, shared_output_dir=d, passthrough=P.PassthroughParams())
    first = stub.SubmitJob(requests(J, spec(dir_a), [("a.bin", b"abc")]), timeout=30)
    try:
        second = stub.SubmitJob(requests(J, spec(dir_b), [("a.bin", b"abc")]), timeout=30)
        result = {"id": second.id, "shared_output_dir": second.spec.shared_output_dir}
    except grpc.RpcError as e:
        result = failure(e)
    return {"first": {"id": first.id, "shared_output_dir": first.spec.shared_output_dir}, "second": result}


def submit_many(address, n):
    from tessera.v1 import jobs_pb2 as J, jobs_pb2_grpc as JG, params_pb2 as P

    # No channel options: the 4 MiB receive limit every gRPC client has by default.
    stub = JG.JobServiceStub(grpc.insecure_channel(address))
    spec = J.JobSpec(label="many", passthrough=P.PassthroughParams(subtasks=int(n)))
    # An answer sent before the job was planned holds no subtasks and shows nothing either way:
    # submitted again (a new job each time, all cancelled below) until one holds some, or fails.
    for attempt in range(1, 4):
        try:
            job = stub.SubmitJob(requests(J, spec, [("a.bin", b"abc")]), timeout=60)
            result = {"id": job.id, "subtasks": len(job.subtasks), "next_subtask_page_token": job.next_subtask_page_token}
        except grpc.RpcError as e:
            result = failure(e)
        result["attempts"] = attempt
        if result.get("subtasks") != 0:
            break
    # Whatever the answer, the job may exist: say so, and cancel it.
    made = [j for j in stub.ListJobs(J.ListJobsRequest(limit=10), timeout=10).jobs if j.spec.label == "many"]
    for j in made:
        if j.state in (J.JOB_STATE_QUEUED, J.JOB_STATE_RUNNING):
            stub.CancelJob(J.CancelJobRequest(job_id=j.id, subtask_limit=1), timeout=10)
    result["jobs_made"] = len(made)
    return result


def main():
    scenario, address, *args = sys.argv[1:]
    gen = tempfile.mkdtemp(prefix="tessera-py-")
    try:
        generate(gen)
        fn = {"rid-outdir": rid_outdir, "submit-many": submit_many}[scenario]
        print(json.dumps(fn(address, *args)))
    finally:
        shutil.rmtree(gen, ignore_errors=True)


if __name__ == "__main__":
    main()
