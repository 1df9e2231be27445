"""Running studies on a SLURM cluster: the sbatch script submitit would submit (dry run, no SLURM
needed) and the cells file that plain ``sbatch`` job arrays index. See slurm/README.md.

- :func:`roarkar.cluster.sbatch.render`, :func:`roarkar.cluster.sbatch.run_sbatch_dry_run`
- :func:`roarkar.cluster.cells.cell_override_lines`, :func:`roarkar.cluster.cells.write_cells_file`,
  and ``python -m roarkar.cluster.cells OUTFILE [--todo] <overrides...>``
"""
