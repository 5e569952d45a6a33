/**
 * Known-answer vectors, copied from their sources (hex as printed there, spaces and line breaks removed):
 * NIST SP 800-38A Appendix F (AES ECB, CBC, CTR), the GCM specification's test cases (McGrew & Viega, as reprinted
 * in SP 800-38D's validation material), RFC 3394 §4, RFC 5649 §6, RFC 4231 §4, RFC 2202 §2–3, FIPS 180-4's examples
 * (NIST CSRC "Examples with intermediate values") and RFC 1321 Appendix A.5.
 */

/** SP 800-38A F.1–F.5 use the same four plaintext blocks. */
export const SP800_38A_PLAINTEXT =
  "6bc1bee22e409f96e93d7e117393172a" +
  "ae2d8a571e03ac9c9eb76fac45af8e51" +
  "30c81c46a35ce411e5fbc1191a0a52ef" +
  "f69f2445df4f9b17ad2b417be66c3710";

export const SP800_38A_KEYS = {
  128: "2b7e151628aed2a6abf7158809cf4f3c",
  192: "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b",
  256: "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
} as const;

/** F.1.1 / F.1.3 / F.1.5 (the decrypt vectors F.1.2/4/6 are the same pairs the other way round). */
export const SP800_38A_ECB = {
  128:
    "3ad77bb40d7a3660a89ecaf32466ef97" +
    "f5d3d58503b9699de785895a96fdbaaf" +
    "43b1cd7f598ece23881b00e3ed030688" +
    "7b0c785e27e8ad3f8223207104725dd4",
  192:
    "bd334f1d6e45f25ff712a214571fa5cc" +
    "974104846d0ad3ad7734ecb3ecee4eef" +
    "ef7afd2270e2e60adce0ba2face6444e" +
    "9a4b41ba738d6c72fb16691603c18e0e",
  256:
    "f3eed1bdb5d2a03c064b5a7e3db181f8" +
    "591ccb10d410ed26dc5ba74a31362870" +
    "b6ed21b99ca6f4f9f153e7b1beafed1d" +
    "23304b7a39f9f3ff067d8d8f9e24ecc7",
} as const;

export const SP800_38A_CBC_IV = "000102030405060708090a0b0c0d0e0f";

/** F.2.1 / F.2.3 / F.2.5. */
export const SP800_38A_CBC = {
  128:
    "7649abac8119b246cee98e9b12e9197d" +
    "5086cb9b507219ee95db113a917678b2" +
    "73bed6b8e3c1743b7116e69e22229516" +
    "3ff1caa1681fac09120eca307586e1a7",
  192:
    "4f021db243bc633d7178183a9fa071e8" +
    "b4d9ada9ad7dedf4e5e738763f69145a" +
    "571b242012fb7ae07fa9baac3df102e0" +
    "08b0e27988598881d920a9e64f5615cd",
  256:
    "f58c4c04d6e5f1ba779eabfb5f7bfbd6" +
    "9cfc4e967edb808d679f777bc6702c7d" +
    "39f23369a9d9bacfa530e26304231461" +
    "b2eb05e2c39be9fcda6c19078c6a9d1b",
} as const;

/** F.5 initial counter block. */
export const SP800_38A_CTR_COUNTER = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

/** F.5.1 / F.5.3 / F.5.5. */
export const SP800_38A_CTR = {
  128:
    "874d6191b620e3261bef6864990db6ce" +
    "9806f66b7970fdff8617187bb9fffdff" +
    "5ae4df3edbd5d35e5b4f09020db03eab" +
    "1e031dda2fbe03d1792170a0f3009cee",
  192:
    "1abc932417521ca24f2b0459fe7e6e0b" +
    "090339ec0aa6faefd5ccc2c6f4ce8e94" +
    "1e36b26bd1ebc670d1bd1d665620abf7" +
    "4f78a7f6d29809585a97daec58c6b050",
  256:
    "601ec313775789a5b7a7f504bbf3d228" +
    "f443e3ca4d62b59aca84e990cacaf5c5" +
    "2b0930daa23de94ce87017ba2d84988d" +
    "dfc9c58db67aada613c2dd08457941a6",
} as const;

export interface GcmVector {
  name: string;
  key: string;
  iv: string;
  pt: string;
  aad: string;
  ct: string;
  tag: string;
}

const GCM_K = "feffe9928665731c6d6a8f9467308308";
const GCM_P60 =
  "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72" +
  "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
const GCM_A = "feedfacedeadbeeffeedfacedeadbeefabaddad2";

/** The GCM specification's test cases 1–6 (AES-128) and 16 (AES-256, 96-bit IV, AAD). */
export const GCM_VECTORS: readonly GcmVector[] = [
  {
    name: "test case 1",
    key: "00000000000000000000000000000000",
    iv: "000000000000000000000000",
    pt: "",
    aad: "",
    ct: "",
    tag: "58e2fccefa7e3061367f1d57a4e7455a",
  },
  {
    name: "test case 2",
    key: "00000000000000000000000000000000",
    iv: "000000000000000000000000",
    pt: "00000000000000000000000000000000",
    aad: "",
    ct: "0388dace60b6a392f328c2b971b2fe78",
    tag: "ab6e47d42cec13bdf53a67b21257bddf",
  },
  {
    name: "test case 3",
    key: GCM_K,
    iv: "cafebabefacedbaddecaf888",
    pt: GCM_P60 + "1aafd255",
    aad: "",
    ct:
      "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e" +
      "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
    tag: "4d5c2af327cd64a62cf35abd2ba6fab4",
  },
  {
    name: "test case 4",
    key: GCM_K,
    iv: "cafebabefacedbaddecaf888",
    pt: GCM_P60,
    aad: GCM_A,
    ct:
      "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e" +
      "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
    tag: "5bc94fbc3221a5db94fae95ae7121a47",
  },
  {
    name: "test case 5 (64-bit IV)",
    key: GCM_K,
    iv: "cafebabefacedbad",
    pt: GCM_P60,
    aad: GCM_A,
    ct:
      "61353b4c2806934a777ff51fa22a4755699b2a714fcdc6f83766e5f97b6c7423" +
      "73806900e49f24b22b097544d4896b424989b5e1ebac0f07c23f4598",
    tag: "3612d2e79e3b0785561be14aaca2fccb",
  },
  {
    name: "test case 6 (480-bit IV)",
    key: GCM_K,
    iv:
      "9313225df88406e555909c5aff5269aa6a7a9538534f7da1e4c303d2a318a728" +
      "c3c0c95156809539fcf0e2429a6b525416aedbf5a0de6a57a637b39b",
    pt: GCM_P60,
    aad: GCM_A,
    ct:
      "8ce24998625615b603a033aca13fb894be9112a5c3a211a8ba262a3cca7e2ca7" +
      "01e4a9a4fba43c90ccdcb281d48c7c6fd62875d2aca417034c34aee5",
    tag: "619cc5aefffe0bfa462af43c1699d050",
  },
  {
    name: "test case 16 (AES-256)",
    key: GCM_K + GCM_K,
    iv: "cafebabefacedbaddecaf888",
    pt: GCM_P60,
    aad: GCM_A,
    ct:
      "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa" +
      "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
    tag: "76fc6ece0f4e1768cddf8853bb2d551b",
  },
];

export interface WrapVector {
  name: string;
  kek: string;
  key: string;
  wrapped: string;
}

const KEK_256 = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/** RFC 3394 §4.1–4.6. */
export const RFC3394_VECTORS: readonly WrapVector[] = [
  {
    name: "4.1 128 bits of key data, 128-bit KEK",
    kek: "000102030405060708090a0b0c0d0e0f",
    key: "00112233445566778899aabbccddeeff",
    wrapped: "1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5",
  },
  {
    name: "4.2 128 bits of key data, 192-bit KEK",
    kek: "000102030405060708090a0b0c0d0e0f1011121314151617",
    key: "00112233445566778899aabbccddeeff",
    wrapped: "96778b25ae6ca435f92b5b97c050aed2468ab8a17ad84e5d",
  },
  {
    name: "4.3 128 bits of key data, 256-bit KEK",
    kek: KEK_256,
    key: "00112233445566778899aabbccddeeff",
    wrapped: "64e8c3f9ce0f5ba263e9777905818a2a93c8191e7d6e8ae7",
  },
  {
    name: "4.4 192 bits of key data, 192-bit KEK",
    kek: "000102030405060708090a0b0c0d0e0f1011121314151617",
    key: "00112233445566778899aabbccddeeff0001020304050607",
    wrapped: "031d33264e15d33268f24ec260743edce1c6c7ddee725a936ba814915c6762d2",
  },
  {
    name: "4.5 192 bits of key data, 256-bit KEK",
    kek: KEK_256,
    key: "00112233445566778899aabbccddeeff0001020304050607",
    wrapped: "a8f9bc1612c68b3ff6e6f4fbe30e71e4769c8b80a32cb8958cd5d17d6b254da1",
  },
  {
    name: "4.6 256 bits of key data, 256-bit KEK",
    kek: KEK_256,
    key: "00112233445566778899aabbccddeeff000102030405060708090a0b0c0d0e0f",
    wrapped: "28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e71a99f43bfb988b9b7a02dd21",
  },
];

/** RFC 5649 §6. */
export const RFC5649_VECTORS: readonly WrapVector[] = [
  {
    name: "20 octets of key data",
    kek: "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8",
    key: "c37b7e6492584340bed12207808941155068f738",
    wrapped: "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a",
  },
  {
    name: "7 octets of key data",
    kek: "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8",
    key: "466f7250617369",
    wrapped: "afbeb0f07dfbf5419200f2ccb50bb24f",
  },
];

export interface MacVector {
  name: string;
  key: string;
  data: string;
  /** By hash; a vector with `truncate` compares the leading bytes only. */
  mac: Partial<Record<"md5" | "sha1" | "sha224" | "sha256" | "sha384" | "sha512", string>>;
  truncate?: number;
}

const ascii = (s: string) => Buffer.from(s, "ascii").toString("hex");
const rep = (byte: string, n: number) => byte.repeat(n);

/** RFC 4231 §4.2–4.8: HMAC-SHA-224/256/384/512 test cases 1–7. */
export const RFC4231_VECTORS: readonly MacVector[] = [
  {
    name: "test case 1",
    key: rep("0b", 20),
    data: ascii("Hi There"),
    mac: {
      sha224: "896fb1128abbdf196832107cd49df33f47b4b1169912ba4f53684b22",
      sha256: "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
      sha384:
        "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c" +
        "faea9ea9076ede7f4af152e8b2fa9cb6",
      sha512:
        "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde" +
        "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
    },
  },
  {
    name: "test case 2 (key shorter than the output)",
    key: ascii("Jefe"),
    data: ascii("what do ya want for nothing?"),
    mac: {
      sha224: "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44",
      sha256: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
      sha384:
        "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e" +
        "8e2240ca5e69e2c78b3239ecfab21649",
      sha512:
        "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554" +
        "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
    },
  },
  {
    name: "test case 3",
    key: rep("aa", 20),
    data: rep("dd", 50),
    mac: {
      sha224: "7fb3cb3588c6c1f6ffa9694d7d6ad2649365b0c1f65d69d1ec8333ea",
      sha256: "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
      sha384:
        "88062608d3e6ad8a0aa2ace014c8a86f0aa635d947ac9febe83ef4e55966144b" +
        "2a5ab39dc13814b94e3ab6e101a34f27",
      sha512:
        "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39" +
        "bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb",
    },
  },
  {
    name: "test case 4",
    key: "0102030405060708090a0b0c0d0e0f10111213141516171819",
    data: rep("cd", 50),
    mac: {
      sha224: "6c11506874013cac6a2abc1bb382627cec6a90d86efc012de7afec5a",
      sha256: "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
      sha384:
        "3e8a69b7783c25851933ab6290af6ca77a9981480850009cc5577c6e1f573b4e" +
        "6801dd23c4a7d679ccf8a386c674cffb",
      sha512:
        "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3db" +
        "a91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd",
    },
  },
  {
    name: "test case 5 (truncated to 128 bits)",
    key: rep("0c", 20),
    data: ascii("Test With Truncation"),
    truncate: 16,
    mac: {
      sha224: "0e2aea68a90c8d37c988bcdb9fca6fa8",
      sha256: "a3b6167473100ee06e0c796c2955552b",
      sha384: "3abf34c3503b2a23a46efc619baef897",
      sha512: "415fad6271580a531d4179bc891d87a6",
    },
  },
  {
    name: "test case 6 (key larger than a block)",
    key: rep("aa", 131),
    data: ascii("Test Using Larger Than Block-Size Key - Hash Key First"),
    mac: {
      sha224: "95e9a0db962095adaebe9b2d6f0dbce2d499f112f2d2b7273fa6870e",
      sha256: "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
      sha384:
        "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6" +
        "0c2ef6ab4030fe8296248df163f44952",
      sha512:
        "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352" +
        "6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
    },
  },
  {
    name: "test case 7 (key and data larger than a block)",
    key: rep("aa", 131),
    data: ascii(
      "This is a test using a larger than block-size key and a larger than block-size data. " +
        "The key needs to be hashed before being used by the HMAC algorithm.",
    ),
    mac: {
      sha224: "3a854166ac5d9f023f54d517d0b39dbd946770db9c2b95c9f6f565d1",
      sha256: "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
      sha384:
        "6617178e941f020d351e2f254e8fd32c602420feb0b8fb9adccebb82461e99c5" +
        "a678cc31e799176d3860e6110c46523e",
      sha512:
        "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944" +
        "b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58",
    },
  },
];

/** RFC 2202 §3 (HMAC-SHA-1) and §2 (HMAC-MD5), test cases 1–7. */
export const RFC2202_VECTORS: readonly MacVector[] = [
  {
    name: "test case 1",
    key: rep("0b", 20),
    data: ascii("Hi There"),
    mac: { sha1: "b617318655057264e28bc0b6fb378c8ef146be00" },
  },
  {
    name: "test case 2",
    key: ascii("Jefe"),
    data: ascii("what do ya want for nothing?"),
    mac: { sha1: "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79", md5: "750c783e6ab0b503eaa86e310a5db738" },
  },
  {
    name: "test case 3",
    key: rep("aa", 20),
    data: rep("dd", 50),
    mac: { sha1: "125d7342b9ac11cd91a39af48aa17b4f63f175d3" },
  },
  {
    name: "test case 4",
    key: "0102030405060708090a0b0c0d0e0f10111213141516171819",
    data: rep("cd", 50),
    mac: { sha1: "4c9007f4026250c6bc8414f9bf50c86c2d7235da", md5: "697eaf0aca3a3aea3a75164746ffaa79" },
  },
  {
    name: "test case 5 (truncated to 96 bits)",
    key: rep("0c", 20),
    data: ascii("Test With Truncation"),
    truncate: 12,
    mac: { sha1: "4c1a03424b55e07fe7f27be1" },
  },
  {
    name: "test case 6",
    key: rep("aa", 80),
    data: ascii("Test Using Larger Than Block-Size Key - Hash Key First"),
    mac: { sha1: "aa4ae5e15272d00e95705637ce8a3b55ed402112", md5: "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd" },
  },
  {
    name: "test case 7",
    key: rep("aa", 80),
    data: ascii("Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data"),
    mac: { sha1: "e8e99d0f45237d786d6bbaa7965c7808bbff1a91", md5: "6f630fad67cda0ee1fb1f562db3aa53e" },
  },
];

export interface DigestVector {
  name: string;
  /** The message as ASCII, or `repeat` copies of it. */
  message: string;
  repeat?: number;
  digest: Partial<Record<"md5" | "sha1" | "sha224" | "sha256" | "sha384" | "sha512", string>>;
}

const MSG_448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
const MSG_896 =
  "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";

/** FIPS 180-4 examples (NIST CSRC) and the long-message "one million a" test. */
export const FIPS180_VECTORS: readonly DigestVector[] = [
  {
    name: '"abc"',
    message: "abc",
    digest: {
      sha1: "a9993e364706816aba3e25717850c26c9cd0d89d",
      sha224: "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7",
      sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
      sha384:
        "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed" +
        "8086072ba1e7cc2358baeca134c825a7",
      sha512:
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a" +
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
    },
  },
  {
    name: "the 448-bit message",
    message: MSG_448,
    digest: {
      sha1: "84983e441c3bd26ebaae4aa1f95129e5e54670f1",
      sha224: "75388b16512776cc5dba5da1fd890150b0c6455cb4f58b1952522525",
      sha256: "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
      sha384:
        "3391fdddfc8dc7393707a65b1b4709397cf8b1d162af05abfe8f450de5f36bc6" +
        "b0455a8520bc4e6f5fe95b1fe3c8452b",
      sha512:
        "204a8fc6dda82f0a0ced7beb8e08a41657c16ef468b228a8279be331a703c335" +
        "96fd15c13b1b07f9aa1d3bea57789ca031ad85c7a71dd70354ec631238ca3445",
    },
  },
  {
    name: "the 896-bit message",
    message: MSG_896,
    digest: {
      sha384:
        "09330c33f71147e83d192fc782cd1b4753111b173b3b05d22fa08086e3b0f712" +
        "fcc7c71a557e2db966c3e9fa91746039",
      sha512:
        "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018" +
        "501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909",
    },
  },
  {
    name: '1,000,000 × "a"',
    message: "a",
    repeat: 1_000_000,
    digest: {
      sha1: "34aa973cd4c4daa4f61eeb2bdbad27316534016f",
      sha224: "20794655980c91d8bbb4c1ea97618a4bf03f42581948b2ee4ee7ad67",
      sha256: "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
      sha384:
        "9d0e1809716474cb086e834e310a4a1ced149e9c00f248527972cec5704c2a5b" +
        "07b8b3dc38ecc4ebae97ddd87f3d8985",
      sha512:
        "e718483d0ce769644e2e42c7bc15b4638e1f98b13b2044285632a803afa973eb" +
        "de0ff244877ea60a4cb0432ce577c31beb009c5c2c49aa2e4eadb217ad8cc09b",
    },
  },
];

/** RFC 1321 Appendix A.5, the MD5 test suite. */
export const RFC1321_VECTORS: readonly DigestVector[] = [
  { name: '""', message: "", digest: { md5: "d41d8cd98f00b204e9800998ecf8427e" } },
  { name: '"a"', message: "a", digest: { md5: "0cc175b9c0f1b6a831c399e269772661" } },
  { name: '"abc"', message: "abc", digest: { md5: "900150983cd24fb0d6963f7d28e17f72" } },
  { name: '"message digest"', message: "message digest", digest: { md5: "f96b697d7cb7938d525a2f31aaf161d0" } },
  { name: "a..z", message: "abcdefghijklmnopqrstuvwxyz", digest: { md5: "c3fcd3d76192e4007dfb496cca67e13b" } },
  {
    name: "A..Za..z0..9",
    message: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    digest: { md5: "d174ab98d277d9f5a5611c2c9f419d9f" },
  },
  { name: '8 × "1234567890"', message: "1234567890", repeat: 8, digest: { md5: "57edf4a22be3c955ac49da2e2107b67a" } },
];
