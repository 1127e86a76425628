"""Federation simulator with ground truth: ``python -m sim [--seed N]``.

Builds synthetic federations (honest carriers, handset vendors, apps with
noisy crowds, and participants that copy, lie, flood or drift), runs the
learned trust engine, majority vote and the unweighted mean over them, and
prints F1 and the false-block rate on legitimate numbers per scenario.
"""
