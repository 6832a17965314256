// Predict raw rows with a LayerFlow TensorFlow.js export in Node:
//   NODE_PATH=<folder with @tensorflow/tfjs> node predict.js EXPORT_FOLDER ROWS.json
// ROWS.json is a list of rows by raw column name; prints the predictions as JSON.
"use strict";
const fs = require("fs");
const path = require("path");
const tf = require("@tensorflow/tfjs");
const { prepare } = require("./preprocess.js");

function fromFolder(folder) {
  // TF.js' own IOHandler over files: model.json and its shards, as a browser fetches them.
  return {
    load: async () => {
      const json = JSON.parse(fs.readFileSync(path.join(folder, "model.json"), "utf8"));
      const buffers = [];
      for (const group of json.weightsManifest) {
        for (const file of group.paths) buffers.push(fs.readFileSync(path.join(folder, file)));
      }
      const data = Buffer.concat(buffers);
      return {
        modelTopology: json.modelTopology,
        weightSpecs: json.weightsManifest.flatMap((group) => group.weights),
        weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength),
        format: json.format,
        generatedBy: json.generatedBy,
        convertedBy: json.convertedBy,
      };
    },
  };
}

async function main() {
  const [folder, rowsFile] = process.argv.slice(2);
  const state = JSON.parse(fs.readFileSync(path.join(folder, "preprocessing.json"), "utf8"));
  const rows = JSON.parse(fs.readFileSync(rowsFile, "utf8"));
  const model = await tf.loadLayersModel(fromFolder(folder));
  const tensors = prepare(state, rows).map((input) => tf.tensor(input.values, input.shape, input.dtype));
  const output = model.predict(tensors.length === 1 ? tensors[0] : tensors);
  const first = Array.isArray(output) ? output[0] : output;
  process.stdout.write(JSON.stringify(await first.array()) + "\n");
}

main().catch((error) => {
  process.stderr.write(`${error.message || error}\n`);
  process.exit(1);
});
