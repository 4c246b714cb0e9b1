"""Operations as ordered lists of small phases, run by one manager (k0sctl's phase package is
the model): each phase has a title, a should-run test, a run and a dry run. `operations` holds
the lists for up, plan, add-node, remove-node and reset; the commands only parse options,
call `operations.run_*` and print."""
