"""Joint maps from motion-capture skeletons to SMPL's 24 skeleton joints, as data.

Each map names, for some of SMPL's joints (``spinfits.fitting.body.joints.SMPL_JOINT_NAMES``), the
BVH joint at the same place in the body. SMPL's spine joints are left out everywhere (each rig
splits the spine differently), and so are joints a rig lacks (the cgspeed/Daz rig has no toe
joint). A skeleton is recognised by holding every BVH joint of a map; left and right are the
performer's own in all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from spinfits.fitting.body.joints import SMPL_JOINT_NAMES


@dataclass(frozen=True)
class SkeletonMap:
    """SMPL joint name -> BVH joint name, for one rig.

    Fields:
        name: the rig's name, as reports and files record it.
        joints: (SMPL joint, BVH joint) pairs.
        description: where such files come from.
    """

    name: str
    joints: tuple[tuple[str, str], ...]
    description: str

    @property
    def bvh_names(self) -> tuple[str, ...]:
        return tuple(bvh for _, bvh in self.joints)

    @property
    def smpl_indices(self) -> tuple[int, ...]:
        return tuple(SMPL_JOINT_NAMES.index(smpl) for smpl, _ in self.joints)


def _sided(pairs: tuple[tuple[str, str], ...], left: str, right: str) -> tuple[tuple[str, str], ...]:
    """Pairs with ``{side}`` in the SMPL name and ``{s}`` in the BVH name, for both sides."""
    return tuple(
        (smpl.format(side=side), bvh.format(s=s))
        for side, s in (("left", left), ("right", right))
        for smpl, bvh in pairs
    )


#: cgspeed's conversion of CMU's database and most CMU-derived BVH files.
CMU = SkeletonMap(
    "cmu",
    (("pelvis", "Hips"), ("neck", "Neck"), ("head", "Head"))
    + _sided(
        (
            ("{side}_hip", "{s}UpLeg"),
            ("{side}_knee", "{s}Leg"),
            ("{side}_ankle", "{s}Foot"),
            ("{side}_foot", "{s}ToeBase"),
            ("{side}_collar", "{s}Shoulder"),
            ("{side}_shoulder", "{s}Arm"),
            ("{side}_elbow", "{s}ForeArm"),
            ("{side}_wrist", "{s}Hand"),
        ),
        "Left",
        "Right",
    ),
    "CMU/cgspeed naming (Hips, LeftUpLeg, LeftLeg, LeftFoot, LeftToeBase, Neck, Head, LeftShoulder, "
    "LeftArm, LeftForeArm, LeftHand, ...)",
)

#: The Daz/Poser rig of cgspeed's "Daz-friendly" CMU release (acLSTM's training files).
DAZ = SkeletonMap(
    "cgspeed-daz",
    (("pelvis", "hip"), ("neck", "neck"), ("head", "head"))
    + _sided(
        (
            ("{side}_hip", "{s}Thigh"),
            ("{side}_knee", "{s}Shin"),
            ("{side}_ankle", "{s}Foot"),
            ("{side}_collar", "{s}Collar"),
            ("{side}_shoulder", "{s}Shldr"),
            ("{side}_elbow", "{s}ForeArm"),
            ("{side}_wrist", "{s}Hand"),
        ),
        "l",
        "r",
    ),
    "cgspeed's Daz-friendly naming (hip, abdomen, chest, neck, head, lCollar, lShldr, lForeArm, "
    "lHand, lThigh, lShin, lFoot, ...)",
)

#: Reallusion Character Creator's rig (iClone's conversion of CMU's ASF/AMC).
CHARACTER_CREATOR = SkeletonMap(
    "character-creator",
    (("pelvis", "CC_Base_Hip"), ("neck", "CC_Base_NeckTwist01"), ("head", "CC_Base_Head"))
    + _sided(
        (
            ("{side}_hip", "CC_Base_{s}_Thigh"),
            ("{side}_knee", "CC_Base_{s}_Calf"),
            ("{side}_ankle", "CC_Base_{s}_Foot"),
            ("{side}_foot", "CC_Base_{s}_ToeBase"),
            ("{side}_collar", "CC_Base_{s}_Clavicle"),
            ("{side}_shoulder", "CC_Base_{s}_Upperarm"),
            ("{side}_elbow", "CC_Base_{s}_Forearm"),
            ("{side}_wrist", "CC_Base_{s}_Hand"),
        ),
        "L",
        "R",
    ),
    "Character Creator naming (CC_Base_Hip, CC_Base_L_Thigh, CC_Base_L_Calf, CC_Base_L_Foot, "
    "CC_Base_L_Upperarm, CC_Base_NeckTwist01, CC_Base_Head, ...)",
)

SKELETON_MAPS: tuple[SkeletonMap, ...] = (CMU, DAZ, CHARACTER_CREATOR)
