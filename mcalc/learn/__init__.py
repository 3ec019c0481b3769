"""Learning: ROI preprocessing, the backbone's weights, the paper's network, cached backbone features,
texture features, fine-tuning, and the splits the heads are trained on."""
