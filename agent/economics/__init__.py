"""Partner economics: the reseller program's rules (program.yaml), applied to the ledger.

`program` loads the rules, `rules` applies them (pure), `turnover` reads the ledger through them,
`billing_csv` moves billing history in and out, `chart` draws the last 12 months.
"""
