-- Orthanc auto-routing of ECGs to ecg-dicom, loop-safe.
--
-- Install: put this file beside orthanc.json and list it there,
--   "LuaScripts": ["orthanc-routing.lua"],
-- declare ecg-dicom as a modality named "ecgdicom",
--   "DicomModalities": {"ecgdicom": ["ECGDICOM", "10.1.2.5", 11112]},
-- and, in ecg-dicom's site file, Orthanc as the destination of its own AE title
-- (delivery.destinations), so the SR and SC come back into the same study.
--
-- What is routed: only objects that can hold an ECG (the SOP classes below).
-- What is never routed, so results cannot loop back to ecg-dicom:
--   * anything ecg-dicom sent (its calling AE title, ECG_DICOM_AET below);
--   * an ecg-dicom result however it arrived (a copy, a study import): its
--     Contributing Equipment names ECG_DICOM_MANUFACTURER (output.manufacturer),
--     or its series is ecg-dicom's (output.series_number_sc / _sr, 9901 / 9902,
--     with ecg-dicom's series description);
--   * what a Lua script stored itself.
-- ecg-dicom also declines its own results on its side (dicom/ingest.py), so a
-- forward-everything rule does not loop either; this script spares that traffic.
-- Tested by tests/e2e/test_orthanc_lua_routing.py (Orthanc 1.10, a real ecg-dicom).

local ECG_DICOM_MODALITY = 'ecgdicom'                -- the name in DicomModalities
local ECG_DICOM_AET = 'ECGDICOM'                     -- dicom.ae_title (or delivery.calling_ae_title)
local ECG_DICOM_MANUFACTURER = 'ecg-dicom project'   -- output.manufacturer
local ECG_DICOM_SERIES = { ['9901'] = true, ['9902'] = true }  -- output.series_number_sc / _sr

-- The SOP classes ecg-dicom reads an ECG from.
local ECG_CLASSES = {
  ['1.2.840.10008.5.1.4.1.1.9.1.1'] = '12-lead ECG Waveform',
  ['1.2.840.10008.5.1.4.1.1.9.1.2'] = 'General ECG Waveform',
  ['1.2.840.10008.5.1.4.1.1.9.1.3'] = 'Ambulatory ECG Waveform',
  ['1.2.840.10008.5.1.4.1.1.9.1.4'] = 'General 32-bit ECG Waveform',
  ['1.2.840.10008.5.1.4.1.1.9.2.1'] = 'Hemodynamic Waveform',
  ['1.2.840.10008.5.1.4.1.1.7'] = 'Secondary Capture Image (a scanned ECG)',
  ['1.2.840.10008.5.1.4.1.1.7.2'] = 'Multi-frame Grayscale Byte Secondary Capture',
  ['1.2.840.10008.5.1.4.1.1.7.4'] = 'Multi-frame True Color Secondary Capture',
  ['1.2.840.10008.5.1.4.1.1.77.1.4'] = 'VL Photographic Image',
  ['1.2.840.10008.5.1.4.1.1.104.1'] = 'Encapsulated PDF',
}

local function Trim(s)
  return (tostring(s or ''):gsub('^%s+', ''):gsub('%s+$', ''))
end

-- Whether the instance is an ecg-dicom result (the SC; the SR is no ECG class anyway).
local function IsEcgDicomResult(tags)
  local equipment = tags['ContributingEquipmentSequence']
  if type(equipment) == 'table' then
    for _, item in ipairs(equipment) do
      if type(item) == 'table' and Trim(item['Manufacturer']) == ECG_DICOM_MANUFACTURER then
        return true
      end
    end
  end
  local series = Trim(tags['SeriesNumber'])
  local description = Trim(tags['SeriesDescription'])
  return ECG_DICOM_SERIES[series] == true and description:find('^AI result') ~= nil
end

function OnStoredInstance(instanceId, tags, metadata, origin)
  if origin ~= nil and origin['RequestOrigin'] == 'Lua' then
    return                                   -- stored by a script
  end
  if origin ~= nil and Trim(origin['RemoteAet']) == ECG_DICOM_AET then
    return                                   -- sent by ecg-dicom: its results
  end
  -- The whole header (the "tags" argument may hold the main tags only).
  local full = ParseJson(RestApiGet('/instances/' .. instanceId .. '/simplified-tags'))
  local sopClass = Trim(full['SOPClassUID'])
  if ECG_CLASSES[sopClass] == nil then
    return                                   -- not an ECG input (CT, SR, KO...)
  end
  if IsEcgDicomResult(full) then
    return                                   -- an ecg-dicom result, however it came
  end
  print('ecg-dicom routing: ' .. ECG_CLASSES[sopClass] .. ' ' .. instanceId .. ' -> ' ..
        ECG_DICOM_MODALITY)
  SendToModality(instanceId, ECG_DICOM_MODALITY)
end
