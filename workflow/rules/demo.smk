# The built-in demo experiment, simulated with microdiff.simulate (only when input.demo is set).
if config["input"].get("demo"):

    rule simulate_demo:
        output:
            images=expand("data/demo/images/{sample}.ome.tif", sample=SAMPLES.index),
            sheet="data/demo/samples.tsv",
        params:
            demo=config["input"]["demo"],
        log:
            "logs/simulate_demo/demo.log",
        benchmark:
            "benchmarks/simulate_demo/demo.tsv"
        threads: 1
        resources:
            **stage_resources("simulate_demo"),
        conda:
            "../../envs/image.yaml"
        script:
            "../../scripts/simulate_demo.py"
