"""intake's use cases beyond taking files in: submissions and their counts, the stage of
every instance as the later services report it, and the quarantine."""
