"""The speed path beside the learner's: the same numbers, bit for bit, in fewer NumPy calls.

``flat`` lays arrays end to end in one buffer; ``threads`` picks BLAS's thread count.
"""
