#!/usr/bin/python3
# Maskflow real-size tools (scripts/real-size). DEFAULT_OP_BLOCK_LIST is onnxconverter-common's (MIT); the rest is written here.
"""fp32 -> fp16 converter for an optimum-layout Stable Diffusion ONNX folder.

In the spirit of onnxconverter-common's convert_float_to_float16(keep_io_types=False):
  * every FLOAT initializer and every FLOAT tensor attribute (Constant.value, ConstantOfShape.value, ...)
    becomes FLOAT16, values clipped to the fp16 range like onnxconverter-common does
    (|x| > 65504 -> +-65504, 0 < |x| < 5.96e-8 -> +-5.96e-8);
  * every Cast(to=FLOAT) becomes Cast(to=FLOAT16);
  * graph inputs / outputs / value_info of type FLOAT become FLOAT16;
  * integer tensors are left alone;
  * ops in the block list (onnxconverter-common's DEFAULT_OP_BLOCK_LIST by default; of those only Resize
    occurs in SD1.5) stay fp32: a Cast(fp16->fp32) is inserted in front of each float input and a
    Cast(fp32->fp16) behind each float output; constants feeding only blocked ops stay fp32.
    (Resize must not simply be converted: its `scales` input is tensor(float) only in the ONNX spec.)

Usage: to_fp16.py SRC_MODEL_DIR DST_MODEL_DIR [--block Op1,Op2] [--only unet,vae_decoder]
"""
import argparse
import json
import os
import shutil
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# onnxconverter-common 1.13 float16.DEFAULT_OP_BLOCK_LIST
DEFAULT_OP_BLOCK_LIST = [
    "ArrayFeatureExtractor", "Binarizer", "CastMap", "CategoryMapper", "DictVectorizer", "FeatureVectorizer",
    "Imputer", "LabelEncoder", "LinearClassifier", "LinearRegressor", "Normalizer", "OneHotEncoder",
    "RandomUniformLike", "SVMClassifier", "SVMRegressor", "Scaler", "TreeEnsembleClassifier",
    "TreeEnsembleRegressor", "ZipMap", "NonMaxSuppression", "TopK", "RoiAlign", "Resize", "Range", "CumSum",
    "Min", "Max", "Upsample",
]
MIN_POSITIVE = 5.96e-08
MAX_FINITE = 65504.0
PARTS = ["text_encoder", "unet", "vae_encoder", "vae_decoder"]


def fp16_array(arr, stats):
    arr = np.asarray(arr, dtype=np.float32)
    finite = np.isfinite(arr)
    big = finite & (np.abs(arr) > MAX_FINITE)
    tiny = (arr != 0) & (np.abs(arr) < MIN_POSITIVE)
    stats["clipped_big"] += int(big.sum())
    stats["clipped_tiny"] += int(tiny.sum())
    if big.any() or tiny.any():
        arr = arr.copy()
        arr[big] = np.sign(arr[big]) * MAX_FINITE
        arr[tiny] = np.sign(arr[tiny]) * MIN_POSITIVE
    return arr.astype(np.float16)


def convert_tensor(t, stats):
    """In place: a FLOAT TensorProto becomes FLOAT16 with the same name."""
    if t.data_type != TensorProto.FLOAT:
        return False
    arr = numpy_helper.to_array(t)
    new = numpy_helper.from_array(fp16_array(arr, stats), t.name)
    t.CopyFrom(new)
    return True


def elem_types(struct_model):
    """name -> elem_type for every tensor, from ONNX type inference on the weight-less graph."""
    inferred = onnx.shape_inference.infer_shapes(struct_model)
    g = inferred.graph
    types = {}
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        types[vi.name] = vi.type.tensor_type.elem_type
    for t in g.initializer:
        types[t.name] = t.data_type
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    types[n.output[0]] = a.t.data_type
    return types


def convert_model(src, dst, block, external, log):
    t0 = time.time()
    stats = {"clipped_big": 0, "clipped_tiny": 0}
    struct = onnx.load(src, load_external_data=False)
    types = elem_types(struct)
    del struct
    model = onnx.load(src, load_external_data=True)
    g = model.graph
    log(f"  loaded {src} in {time.time() - t0:.1f}s")

    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    blocked_nodes = [n for n in g.node if n.op_type in block]
    # Constants / initializers that only blocked ops read stay fp32 (e.g. Resize's scales).
    keep_fp32 = set()
    const_out = {n.output[0] for n in g.node if n.op_type == "Constant"}
    init_names = {t.name for t in g.initializer}
    for name, users in consumers.items():
        if (name in const_out or name in init_names) and users and all(u.op_type in block for u in users):
            keep_fp32.add(name)

    n_init = n_const = n_cast = n_io = n_vi = 0
    for t in g.initializer:
        if t.name not in keep_fp32 and convert_tensor(t, stats):
            n_init += 1
    for n in g.node:
        if n.op_type in block:
            continue
        if n.op_type == "Constant" and n.output[0] in keep_fp32:
            continue
        if n.op_type == "Cast":
            for a in n.attribute:
                if a.name == "to" and a.i == TensorProto.FLOAT:
                    a.i = TensorProto.FLOAT16
                    n_cast += 1
        for a in n.attribute:
            if a.name in ("value_float", "value_floats"):
                raise SystemExit(f"{n.name}: {a.name} attribute not handled")
            if a.type == onnx.AttributeProto.TENSOR and convert_tensor(a.t, stats):
                n_const += 1
            if a.type == onnx.AttributeProto.TENSORS:
                for t in a.tensors:
                    n_const += convert_tensor(t, stats)
            if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                raise SystemExit(f"{n.name}: subgraphs not handled")
    for vi in list(g.input) + list(g.output):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = TensorProto.FLOAT16
            n_io += 1
    for vi in g.value_info:
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = TensorProto.FLOAT16
            n_vi += 1

    # Casts around blocked ops, keeping the node list in topological order.
    inserted = 0
    if blocked_nodes:
        blocked_ids = {id(n) for n in blocked_nodes}
        new_nodes = []
        for n in g.node:
            if id(n) not in blocked_ids:
                new_nodes.append(n)
                continue
            after = []
            for i, name in enumerate(n.input):
                if name and types.get(name) == TensorProto.FLOAT and name not in keep_fp32:
                    cast_out = f"{n.name}_input_cast_{i}"
                    new_nodes.append(helper.make_node("Cast", [name], [cast_out], to=TensorProto.FLOAT, name=f"{n.name}_input_cast{i}"))
                    n.input[i] = cast_out
                    inserted += 1
            for i, name in enumerate(n.output):
                if name and types.get(name) == TensorProto.FLOAT:
                    fp32_out = f"{n.name}_output_cast_{i}"
                    n.output[i] = fp32_out
                    after.append(helper.make_node("Cast", [fp32_out], [name], to=TensorProto.FLOAT16, name=f"{n.name}_output_cast{i}"))
                    inserted += 1
            new_nodes.append(n)
            new_nodes.extend(after)
        del g.node[:]
        g.node.extend(new_nodes)

    os.makedirs(os.path.dirname(dst), exist_ok=True)
    t1 = time.time()
    if external:
        loc = "model.onnx_data"
        if os.path.exists(os.path.join(os.path.dirname(dst), loc)):
            os.remove(os.path.join(os.path.dirname(dst), loc))
        onnx.save_model(model, dst, save_as_external_data=True, all_tensors_to_one_file=True, location=loc, size_threshold=1024)
    else:
        onnx.save_model(model, dst)
    log(
        f"  {os.path.relpath(dst)}: initializers->fp16 {n_init}, tensor attrs (Constant/ConstantOfShape)->fp16 {n_const}, "
        f"Cast(to=FLOAT)->FLOAT16 {n_cast}, graph io->fp16 {n_io}, value_info->fp16 {n_vi}, "
        f"blocked (kept fp32) nodes {len(blocked_nodes)} {sorted({n.op_type for n in blocked_nodes})}, "
        f"inserted Casts {inserted}, kept-fp32 constants {len(keep_fp32)}, values clipped >65504: {stats['clipped_big']}, "
        f"tiny->5.96e-8: {stats['clipped_tiny']}; saved in {time.time() - t1:.1f}s (total {time.time() - t0:.1f}s)"
    )
    del model


def convert_folder(src, dst, parts=PARTS, log=print, block=DEFAULT_OP_BLOCK_LIST, external=("unet",)):
    """Every file of an fp32 folder copied to dst, and each ONNX part in `parts` converted to fp16."""
    os.makedirs(dst, exist_ok=True)
    # Everything that is not an ONNX graph or its weights is copied as is.
    for root, dirs, files in os.walk(src):
        rel = os.path.relpath(root, src)
        part = rel.split(os.sep)[0]
        for f in files:
            if part in PARTS and rel == part and f != "config.json":
                continue  # model.onnx and its external data: written by the converter
            os.makedirs(os.path.join(dst, rel), exist_ok=True)
            shutil.copy2(os.path.join(root, f), os.path.join(dst, rel, f))
    for part in parts:
        log(f"{part}:")
        convert_model(os.path.join(src, part, "model.onnx"), os.path.join(dst, part, "model.onnx"), set(block), part in external, log)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--block", default=",".join(DEFAULT_OP_BLOCK_LIST), help="comma-separated op types kept fp32 ('' for none)")
    ap.add_argument("--only", default=",".join(PARTS))
    ap.add_argument("--external", default="unet", help="parts saved with one external-data file (comma-separated)")
    args = ap.parse_args()

    def log(msg):
        print(msg, flush=True)

    convert_folder(args.src, args.dst, [p for p in args.only.split(",") if p], log,
                   [b for b in args.block.split(",") if b], [e for e in args.external.split(",") if e])


if __name__ == "__main__":
    main()
