"""`python -m cmwnet.paper.study`: the command keeps its name; the studies live in `cmwnet.studies` (run by name,
so the paper's tables never import the studies)."""
if __name__ == "__main__":
    import runpy

    runpy.run_module("cmwnet.studies", run_name="__main__", alter_sys=True)
