"""Traced acceptance: the exact greedy round records of speculative decoding for every γ, from one
batched target generation with every drafter teacher-forced on the target's own tokens.

Why it is exact for greedy decoding: a drafted token is accepted only when it equals the target's
next token, so inside an accepted run the drafter has only ever seen the target's own prefix. The
drafter's greedy choice given the target's prefix (teacher forcing) therefore decides every round:
accept the leading run of matches up to γ, emit the target's next token, start again from there.

    generate.py   batched target generation (left padding, per-row EOS) with drafters in lockstep
    scan.py       a prompt's trace → round records for any γ, as decoding.loops writes them
    timing.py     seconds for traced rounds from the measured cost model; the traced-vs-real check
    probe.py      timed verify passes for the lengths the real subset measured too rarely
    run.py        a traced run: real subset, traced batches, records, the check report
"""
