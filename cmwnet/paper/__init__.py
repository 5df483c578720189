"""The reproduction wing: every table of the CMW-Net paper (1-10) and Fig. 9 as data, one runner, one
results reader, one report and one command line (`python -m cmwnet.paper run|list|report N`), plus
the generated smoke data. It builds on the library (`cmwnet`); the library never imports it."""
