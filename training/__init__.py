"""Fine-tuning CLIP on product image+caption data, and its evaluation."""
