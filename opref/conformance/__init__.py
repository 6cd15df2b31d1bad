"""The pytest entry: each (case, runtime) of a suite becomes one pytest test.

    pytest --pyargs opref.conformance --vectors vectors --runtime ort:cpu [-n auto] [--junitxml j.xml]

Normative failures fail, unless listed in ``--expected FILE`` (then xfail); unsupported,
fallback, timeout and unavailable runtimes skip with their reason; divergences pass.
"""
