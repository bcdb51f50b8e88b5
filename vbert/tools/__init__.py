"""Developer tools outside the pipeline: dependency pins for images, the offline plots template."""
