"""The dashboard (看板) and the JSON API: who may sign in and with what, what each person may
see, and the figures, ledger and map the pages and the API read."""
