// An S3 session as an agent would run it with the AWS SDK for JavaScript v3, unmodified.
//
//   node s3-session.mjs BUCKET [--expect-denied STEP]
//
// Everything comes from the SDK's default chains: the endpoint from AWS_ENDPOINT_URL, the region
// from AWS_REGION, credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or from
// AWS_ROLE_ARN + AWS_ROLE_SESSION_NAME + AWS_WEB_IDENTITY_TOKEN_FILE (how Chaperone's gateway hands
// them out). No client option is set: an IP endpoint already gets path-style addressing.
//
// Steps: create-bucket, put, list, get, delete-object, delete-bucket. Each prints one JSON line,
// {"step":"put","ok":true}, or on failure {"step":"put","ok":false,"code":"AccessDenied",...} and
// the script exits 1. With --expect-denied STEP, that step must fail with AccessDenied: it prints
// {"step":STEP,"ok":true,"denied":true,"code":"AccessDenied"} and the script stops there with 0;
// if it succeeds or fails otherwise, that is a failure (code "UnexpectedSuccess" or the real one).
// Usage errors exit 2.

import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";

const STEPS = ["create-bucket", "put", "list", "get", "delete-object", "delete-bucket"];
const KEY = "chaperone/session.txt";

function usage(message) {
  process.stderr.write(`${message}\nusage: node s3-session.mjs BUCKET [--expect-denied STEP]\n`);
  process.stderr.write(`steps: ${STEPS.join(", ")}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  let bucket;
  let expectDenied;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--expect-denied") {
      expectDenied = argv[++i];
      if (!STEPS.includes(expectDenied)) usage(`unknown step for --expect-denied: ${expectDenied}`);
    } else if (argv[i].startsWith("-")) {
      usage(`unknown option: ${argv[i]}`);
    } else if (bucket === undefined) {
      bucket = argv[i];
    } else {
      usage(`unexpected argument: ${argv[i]}`);
    }
  }
  if (!bucket) usage("a bucket name is required");
  return { bucket, expectDenied };
}

function report(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

// The AWS error code (AccessDenied, SignatureDoesNotMatch, ...); for a network failure, the system
// error's code (ECONNREFUSED, ENOTFOUND, ...).
function errorCode(err) {
  if (err?.Code) return err.Code;
  if (err?.name && err.name !== "Error") return err.name;
  return err?.code ?? "Error";
}

const { bucket, expectDenied } = parseArgs(process.argv.slice(2));
const body = `written by the AWS SDK for JavaScript into ${bucket}\n`;
const s3 = new S3Client({});

const actions = {
  "create-bucket": () => s3.send(new CreateBucketCommand({ Bucket: bucket })),
  put: () =>
    s3.send(new PutObjectCommand({ Bucket: bucket, Key: KEY, Body: body, ContentType: "text/plain" })),
  list: async () => {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
    const keys = (listed.Contents ?? []).map((object) => object.Key);
    if (!keys.includes(KEY)) {
      throw Object.assign(new Error(`listing shows ${JSON.stringify(keys)}, not ${KEY}`), {
        name: "ObjectNotListed",
      });
    }
  },
  get: async () => {
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: KEY }));
    const text = await got.Body.transformToString();
    if (text !== body) {
      throw Object.assign(new Error(`read back ${JSON.stringify(text)}, wrote ${JSON.stringify(body)}`), {
        name: "ContentMismatch",
      });
    }
  },
  "delete-object": () => s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: KEY })),
  "delete-bucket": () => s3.send(new DeleteBucketCommand({ Bucket: bucket })),
};

for (const step of STEPS) {
  let failure;
  try {
    await actions[step]();
  } catch (err) {
    failure = err;
  }
  if (step === expectDenied) {
    if (failure && errorCode(failure) === "AccessDenied") {
      report({ step, ok: true, denied: true, code: "AccessDenied", message: String(failure.message ?? "") });
      process.exit(0);
    }
    if (!failure) {
      report({ step, ok: false, code: "UnexpectedSuccess", message: `${step} was expected to be denied` });
      process.exit(1);
    }
  }
  if (failure) {
    report({
      step,
      ok: false,
      code: errorCode(failure),
      status: failure.$metadata?.httpStatusCode,
      message: failure.message,
    });
    process.exit(1);
  }
  report({ step, ok: true });
}
