"""Real motion capture: BVH clips (``bvh``), their joints in SMPL's slots (``joints``, maps in
``joint_maps``). What is learned from them (the stand-in's pose prior, synthetic poses) is rebuilt
by a tool from ../shared/data/mocap, split by clip, never by frame."""
