"""A Dask cluster on SLURM (dask-jobqueue) for `mcalc sweep`: GPU jobs whose workers declare the GPU
resource, so the points that fine-tune the backbone run there, and the others anywhere.

    pip install dask-jobqueue        # in the same environment as mcalc (same mcalc version)
    python clusters/slurm_gpu.py     # prints the scheduler address and keeps the cluster up
    mcalc sweep GRID.yaml --scheduler tcp://HOST:PORT      # in another shell, from the results' machine

The workers need mcalc installed, not the results folder: the sweep ships each point's inputs and
receives its outputs through Dask (add --shared-fs when the jobs do see the client's folder).
"""

from dask_jobqueue import SLURMCluster  # or PBSCluster, SGECluster, LSFCluster

cluster = SLURMCluster(
    cores=1,  # one point at a time per job: a point uses every CPU TensorFlow finds
    processes=1,
    job_cpu=8,
    memory="32GB",
    walltime="04:00:00",
    job_extra_directives=["--gres=gpu:1"],
    worker_extra_args=[
        "--resources",
        "GPU=1",
    ],  # fine-tuning points (train_backbone top/all) need it
)
cluster.scale(jobs=4)
print(cluster.scheduler_address, flush=True)
input("cluster up; press Enter to stop it\n")
cluster.close()
