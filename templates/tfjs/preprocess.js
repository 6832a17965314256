// LayerFlow's preprocessing for its TensorFlow.js export: raw rows to the model's inputs, from
// the fitted state in preprocessing.json (means, scales, categories, vocabulary). It mirrors
// app/runtime/transform.py; the parity tests check that both give the same predictions.
// Works in Node (require) and in a browser (window.LayerFlow).
(function (exports) {
  "use strict";
  // As app/runtime/columns.py: Keras' TextVectorization's defaults.
  const PUNCTUATION = /[!"#$%&()*+,\-./:;<=>?@[\\\]^_`{|}~']/g;
  const WHITESPACE = /[ \t\n\r\x0b\x0c]+/;
  const PADDING = 0, UNKNOWN_WORD = 1, UNSEEN = 0;

  function missing(value) {
    return value === null || value === undefined || value === "" ||
      (typeof value === "number" && Number.isNaN(value));
  }

  function tokens(text) {
    const lower = String(text).replace(/[A-Z]/g, (c) => c.toLowerCase());
    return lower.replace(PUNCTUATION, "").split(WHITESPACE).filter((word) => word.length > 0);
  }

  function categoryKey(value) {
    if (missing(value)) return null;
    if (typeof value === "boolean") return value ? "True" : "False";
    if (typeof value === "number" && Number.isInteger(value)) return String(value);
    return String(value);
  }

  function numbers(value, feature) {
    const values = Array.isArray(value) ? value.flat(Infinity) : [value];
    const means = [].concat(feature.mean), offsets = [].concat(feature.offset);
    const scales = [].concat(feature.scale);
    return values.map((v, i) => {
      // As the Python side reads a table: blank or unreadable text is a missing number.
      const blank = missing(v) || (typeof v === "string" && v.trim() === "");
      const read = blank ? NaN : Number(v);
      const x = Number.isNaN(read) ? means[i % means.length] : read;
      return (Math.fround(x) - Math.fround(offsets[i % offsets.length])) /
        Math.fround(scales[i % scales.length]);
    });
  }

  function category(value, feature) {
    const key = categoryKey(value);
    const index = key === null ? -1 : feature.categories.indexOf(key);
    const id = index < 0 ? UNSEEN : index + 1;
    if (!feature.onehot) return [id];
    const row = new Array(feature.categories.length + 1).fill(0);
    row[id] = 1;
    return row;
  }

  function featuresOf(row, input) {
    const out = [];
    for (const feature of input.features) {
      const value = row[feature.column];
      out.push(...(feature.kind === "number" ? numbers(value, feature) : category(value, feature)));
    }
    return out;
  }

  function sequence(text, input) {
    const ids = new Map(input.vocabulary.map((word, i) => [word, i + 2]));
    const out = new Array(input.length).fill(PADDING);
    tokens(missing(text) ? "" : text).slice(0, input.length).forEach((word, i) => {
      out[i] = ids.has(word) ? ids.get(word) : UNKNOWN_WORD;
    });
    return out;
  }

  function pixels(value, input) {
    // An image already at the model's height, width and channels (nested or flat, 0..255).
    const flat = Array.isArray(value) ? value.flat(Infinity) : Array.from(value);
    const size = input.height * input.width * input.channels;
    if (flat.length !== size) {
      throw new Error(`image '${input.column}': expected ${input.height}x${input.width}x` +
        `${input.channels} values, received ${flat.length}`);
    }
    return flat.map((v) => Number(v) * input.scale);
  }

  // rows: objects by raw column name. Returns [{name, values, shape, dtype}] in the model's
  // input order, for tf.tensor(values, shape, dtype).
  function prepare(state, rows) {
    return state.order.map((name) => {
      const input = state.inputs[name];
      let values, width, dtype = "float32";
      if (input.kind === "features") {
        values = rows.map((row) => featuresOf(row, input));
      } else if (input.kind === "text") {
        values = rows.map((row) => sequence(row[input.column], input));
        dtype = "int32";
      } else {
        values = rows.map((row) => pixels(row[input.column], input));
      }
      width = values.length ? values[0].length : 0;
      const shape = input.kind === "image"
        ? [rows.length, input.height, input.width, input.channels] : [rows.length, width];
      return { name, values: values.flat(), shape, dtype };
    });
  }

  exports.prepare = prepare;
  exports.tokens = tokens;
})(typeof module !== "undefined" && module.exports ? module.exports :
  (window.LayerFlow = window.LayerFlow || {}));
