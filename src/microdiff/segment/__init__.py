"""Diffusion-based instance segmentation with uncertainty (the `segment` stage).

represent  training pairs (labels -> label_maps.representation), augmentation
model      conditional diffusion UNet: training, K-sample inference, probability/uncertainty
instances  seeded watershed, per-object consistency, stitching over tiles, cells from nuclei
seeds      the watershed's seeds: h-maxima of the distance map, region by region
stage      the stage over stores: shard jobs and the gather (NGFF labels + object table)
"""
